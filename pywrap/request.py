"""A request (one connection, or one tcpdmatch query) and its two endpoints, with lazy facts.

Contract: `Endpoint.address` and `.port` are plain values; `Endpoint.name` is computed on first use, once,
by the lookup the endpoint was built with (the double-reverse check for a socket address), and is
"unknown" when there is no socket address. `Request.user` likewise (ident in tcpd, given in tcpdmatch).
Whether a fact was already computed matters to the reference's output (%h, %c and the log lines show a
name only if something needed it), so `name_known` / `user_known` tell.
"""

from __future__ import annotations

from pywrap.lean import cached_property
from pywrap.text import same

TYPE_CHECKING = False  # no typing or collections import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from collections.abc import Callable

    from pywrap.resolver import Address

UNKNOWN = "unknown"
PARANOID = "paranoid"


def known_name(name: str) -> bool:
    """The reference's HOSTNAME_KNOWN: neither "unknown" nor "paranoid" (its comparisons ignore case)."""
    return not same(name, UNKNOWN) and not same(name, PARANOID)


class Endpoint:
    def __init__(self, address: str = UNKNOWN, port: int | None = None, sockaddr: Address | None = None,
                 lookup: Callable[[Endpoint], str] | None = None, name: str | None = None) -> None:
        self.address = address     # numeric form, or "unknown" when there is no socket address
        self.port = port           # None when there is no socket address
        self.sockaddr = sockaddr   # (family, packed) when there is a socket address
        self._lookup = lookup
        if name is not None:
            self.name = name       # preset (tcpdmatch's "unknown" / "paranoid" pseudo-hosts)

    @cached_property
    def name(self) -> str:
        if self.sockaddr is None or self._lookup is None:
            return UNKNOWN
        return self._lookup(self)

    @property
    def name_known(self) -> bool:
        return "name" in self.__dict__

    @property
    def hostinfo(self) -> str:
        """The name if something already looked it up and it is a real name, else the address (%h)."""
        if self.name_known and known_name(self.name):
            return self.name
        return self.address


class Request:
    def __init__(self, daemon: str, client: Endpoint, server: Endpoint, pid: int = 0,
                 user: str | None = None, user_lookup: Callable[[Request], str] | None = None) -> None:
        self.daemon = daemon
        self.client = client
        self.server = server
        self.pid = pid
        self._user_lookup = user_lookup
        if user is not None:
            self.user = user

    @cached_property
    def user(self) -> str:
        if self._user_lookup is None:
            return UNKNOWN
        return self._user_lookup(self)

    @property
    def user_known(self) -> bool:
        return "user" in self.__dict__

    def client_info(self) -> str:
        """%c: user@host when the user is already known and real, else the host info."""
        if self.user_known and self.user and not same(self.user, UNKNOWN):
            return f"{self.user}@{self.client.hostinfo}"
        return self.client.hostinfo

    def server_info(self) -> str:
        """%s: daemon@host unless the host info is "unknown"."""
        host = self.server.hostinfo
        return self.daemon if same(host, UNKNOWN) else f"{self.daemon}@{host}"
