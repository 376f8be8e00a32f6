"""%-expansion of option values and banner text, with the reference's shell sanitising.

Contract: `expand(template, request, warn)` returns the expanded text. Every expanded value has each byte
that is not an ASCII letter, digit or one of `!@%-_=+:,./` replaced by `_` before it is used, and, as in the
reference, the sanitised value is written back into the request (so later log lines and tcpdmatch's output
show it too). Literal text of the template is never altered. Results longer than the reference's buffer raise
`ExpansionTooLong`. Which letters trigger lookups: %n %N (host names) and %u (the user); the others use only
what is already known (see ../shared/spec/options.md §3).
"""

from __future__ import annotations

from pywrap.request import UNKNOWN, Endpoint, Request, known_name
from pywrap.text import same

TYPE_CHECKING = False  # no typing or collections import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from collections.abc import Callable

SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@%-_=+:,./")
RESULT_LIMIT = 8190  # the reference's 8192-byte buffer, less the NUL and one byte of slack it keeps


class ExpansionTooLong(Exception):
    """percent_x: expansion too long."""

    def __init__(self, head: str) -> None:
        super().__init__(f"percent_x: expansion too long: {head[:30]}...")


def sanitise(value: str) -> str:
    return "".join(c if c in SAFE else "_" for c in value)


def _hostinfo(endpoint: Endpoint) -> str:
    """%h / %H: the reference returns the name or address field itself, so it is sanitised in place."""
    if endpoint.name_known and known_name(endpoint.name):
        endpoint.name = sanitise(endpoint.name)
        return endpoint.name
    endpoint.address = sanitise(endpoint.address)
    return endpoint.address


def _field(request: Request, letter: str) -> str:
    """The value of one %-letter, sanitised in place where the reference sanitises a cached field."""
    client, server = request.client, request.server
    if letter == "a":
        client.address = sanitise(client.address)
        return client.address
    if letter == "A":
        server.address = sanitise(server.address)
        return server.address
    if letter == "c":
        if request.user_known and request.user and not same(request.user, UNKNOWN):
            return sanitise(request.client_info())  # a copy in the reference's static buffer
        return _hostinfo(client)
    if letter == "d":
        request.daemon = sanitise(request.daemon)
        return request.daemon
    if letter == "h":
        return _hostinfo(client)
    if letter == "H":
        return _hostinfo(server)
    if letter == "n":
        client.name = sanitise(client.name)
        return client.name
    if letter == "N":
        server.name = sanitise(server.name)
        return server.name
    if letter == "p":
        return str(request.pid)
    if letter == "r":
        return str(client.port or 0)
    if letter == "R":
        return str(server.port or 0)
    if letter == "s":
        if same(server.hostinfo, UNKNOWN):
            request.daemon = sanitise(request.daemon)
            return request.daemon
        return sanitise(request.server_info())
    if letter == "u":
        request.user = sanitise(request.user)
        return request.user
    if letter == "%":
        return "%"
    raise KeyError(letter)


def expand(template: str, request: Request, warn: Callable[[str], None],
           limit: int = RESULT_LIMIT) -> str:
    out: list[str] = []
    size = 0
    i = 0
    while i < len(template):
        c = template[i]
        if c == "%" and i + 1 < len(template):
            letter = template[i + 1]
            i += 2
            try:
                piece = _field(request, letter)
            except KeyError:
                warn(f"unrecognized %{letter}")
                piece = ""
        else:
            piece = c
            i += 1
        out.append(piece)
        size += len(piece)
        if size > limit:
            raise ExpansionTooLong("".join(out))
    return "".join(out)
