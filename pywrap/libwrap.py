"""libwrap for Python: the access-control calls a daemon makes itself, on the very core tcpd uses.

Contract:
- `hosts_ctl(daemon, client_name=None, client_addr=None, user=None) -> bool` is libwrap's hosts_ctl(3):
  the values are taken as given (None is the reference's "unknown"; no lookups are made for them).
- `AccessRequest.from_socket(sock, daemon)` (stream or datagram) or `AccessRequest.from_endpoints(...)`
  build a request whose host names and user are looked up lazily and boundedly, as in tcpd; `.verdict()`
  returns a `LibVerdict` (granted, the deciding rule's file and line, the options as data); `.allowed()`
  is its `granted`.
- Options never act behind the caller's back: `spawn` and `aclexec` run a shell command (stdio on
  /dev/null) and wait; `banners` text goes to the caller's socket (or, with `send_banners=False`, into the
  verdict); `keepalive` and `linger` set the caller's socket; `setenv`, `umask`, `nice`, `user` and `group`
  are only returned, in the verdict, for the caller to apply; `twist` is refused (the request is denied,
  with an error) unless the caller passes `allow_twist=True`, and then runs in a child process on the
  socket, never replacing the caller.
- A %-expansion longer than the reference's buffer denies, as tcpd refuses it: the reference's warning
  (`percent_x: expansion too long: ...`) is in the verdict's messages, and the caller goes on (Debian's
  libwrap sleeps 5 s and ends the calling process).
- `LibVerdict.log(ident)` writes the reference's `connect from` / `refused connect from` line to syslog;
  or the caller logs from the verdict's data. Diagnostics are in `LibVerdict.messages`.
- Thread- and process-safe: tables are re-read only when they change (see pywrap.access), and every call
  has its own request, matcher and diagnostics.
"""

from __future__ import annotations

import os
import socket

from pywrap import settings
from pywrap.diag import CollectingDiagnostics
from pywrap.expand import ExpansionTooLong
from pywrap.options import Effects, OptionError
from pywrap.request import UNKNOWN, Endpoint, Request
from pywrap.text import truncate


class LibVerdict:
    """What the rules decided, and what the matched rule's options ask the caller to do."""

    def __init__(self, request: Request, granted: bool, rule=None, delegated: bool = False) -> None:
        self.request = request
        self.granted = granted
        self.delegated = delegated          # a twist command took the connection (allow_twist=True)
        self.file = rule.file if rule else None
        self.line = rule.line if rule else None
        fields = (rule.options or ()) if rule else ()
        self.options: tuple[tuple[str, str], ...] = tuple((o.keyword, o.value) for o in fields)
        self.setenv: dict[str, str] = {}
        self.umask: int | None = None
        self.nice: int | None = None
        self.user: tuple[int, int | None, str] | None = None   # (uid, gid or None, name)
        self.group: tuple[int, str] | None = None               # (gid, name)
        self.banner = b""                   # banner text, when it was not sent to the socket
        self.severity: int | None = None
        self.messages: list[tuple[str, tuple[str, int] | None, str]] = []

    def __bool__(self) -> bool:
        return self.granted

    def log(self, ident: str | None = None) -> None:
        """The reference's line for this verdict, to syslog, under `ident` (default: the daemon name)."""
        from pywrap.log import LOG_INFO, LOG_WARNING, SyslogClient, verdict_line

        severity = self.severity or (LOG_INFO if self.granted else LOG_WARNING)
        SyslogClient(ident or self.request.daemon).log(severity, verdict_line(self.request, self.granted))


class _LibraryEffects(Effects):
    def __init__(self, verdict_data: dict, sock: socket.socket | None, send_banners: bool, allow_twist: bool,
                 diag) -> None:
        self.data = verdict_data
        self.sock = sock
        self.send_banners = send_banners
        self.allow_twist = allow_twist
        self.diag = diag
        self.ident_timeout: int | None = None

    def spawn(self, command: str) -> None:
        from pywrap.effects import run_shell

        run_shell(command)

    def aclexec(self, command: str) -> bool:
        from pywrap.effects import run_aclexec

        return run_aclexec(command, self.diag.warning)

    def twist(self, command: str) -> None:
        if not self.allow_twist:
            raise OptionError('option "twist" is refused by the library (pass allow_twist=True to allow it)')
        if self.sock is None:
            raise OptionError('option "twist" needs a socket')
        pid = os.fork()
        if pid == 0:  # the child becomes the shell on the client's socket; the caller is never replaced
            try:
                for fd in (0, 1, 2):
                    os.dup2(self.sock.fileno(), fd)
                os.execv("/bin/sh", [b"sh", b"-c", command.encode("latin-1", "replace")])
            finally:
                os._exit(1)
        self.data["twisted"] = pid

    def severity(self, facility: int | None, level: int) -> None:
        self.data["severity"] = level if facility is None else (facility << 3) | level

    def rfc931(self, timeout: int | None) -> None:
        if timeout is not None:
            self.ident_timeout = timeout

    def banners(self, directory: str, request: Request) -> None:
        from pywrap.banners import banner_bytes

        text = banner_bytes(directory, request, self.diag.warning)
        if self.send_banners and self.sock is not None and self.sock.type == socket.SOCK_STREAM:
            self.sock.sendall(text)
        else:
            self.data["banner"] = self.data.get("banner", b"") + text

    def nice(self, increment: int) -> None:
        self.data["nice"] = increment

    def setenv(self, name: str, value: str) -> None:
        self.data.setdefault("setenv", {})[name] = value

    def umask(self, mask: int) -> None:
        self.data["umask"] = mask

    def user(self, uid: int, gid: int | None, name: str) -> None:
        self.data["user"] = (uid, gid, name)

    def group(self, gid: int, name: str) -> None:
        self.data["group"] = (gid, name)

    def keepalive(self) -> None:
        from pywrap.effects import set_keepalive

        set_keepalive(self.sock, self.diag.warning)

    def linger(self, seconds: int) -> None:
        from pywrap.effects import set_linger

        set_linger(self.sock, seconds, self.diag.warning)


class AccessRequest:
    def __init__(self, request: Request, sock: socket.socket | None = None, sink: bool = False) -> None:
        self.request = request
        self.sock = sock
        self.sink = sink

    @classmethod
    def from_endpoints(cls, daemon: str, client_addr: str | None = None, client_port: int | None = None,
                       server_addr: str | None = None, server_port: int | None = None,
                       client_name: str | None = None, user: str | None = None) -> AccessRequest:
        """A request from explicit values; a client address that parses is verified by lookup when a rule
        needs its name (unless client_name is given)."""
        return cls(Request(daemon, _endpoint(client_addr, client_port, client_name),
                           _endpoint(server_addr, server_port, None), os.getpid(), user=user))

    @classmethod
    def from_socket(cls, sock: socket.socket, daemon: str) -> AccessRequest:
        """A request for a connected stream socket, or a datagram socket with a datagram waiting."""
        from pywrap.endpoints import _side

        sink = sock.type == socket.SOCK_DGRAM
        try:
            peer = sock.recvfrom(1, socket.MSG_PEEK)[1] if sink else sock.getpeername()
            client = _side(sock.family, peer)
        except OSError:
            client = None
        try:
            server = _side(sock.family, sock.getsockname())
        except OSError:
            server = None
        holder: dict = {}

        def user(request: Request) -> str:
            if sink or client is None or server is None:
                return UNKNOWN
            from pywrap.ident import ident_user

            effects = holder.get("effects")
            timeout = (effects.ident_timeout if effects else None) or settings.RFC931_TIMEOUT
            return ident_user(client, server, timeout)

        request = Request(daemon, _side_endpoint(client), _side_endpoint(server), os.getpid(),
                          user_lookup=user)
        access = cls(request, sock, sink)
        access._holder = holder
        return access

    def verdict(self, *, send_banners: bool = True, allow_twist: bool = False,
                tables: tuple[str, str] | None = None) -> LibVerdict:
        from pywrap.access import decide

        diag = CollectingDiagnostics()
        data: dict = {}
        effects = _LibraryEffects(data, self.sock, send_banners, allow_twist, diag)
        getattr(self, "_holder", {})["effects"] = effects
        allow, deny = tables or (settings.HOSTS_ALLOW, settings.HOSTS_DENY)
        try:
            decided = decide(self.request, diag, effects, allow, deny)
        except ExpansionTooLong:  # as in tcpd: warned where it happened, in the reference's words; not served
            result = LibVerdict(self.request, False)
        except Exception as e:  # fail closed: anything unexpected denies, and says why
            diag.error(f"internal error, denied: {type(e).__name__}: {e}")
            result = LibVerdict(self.request, False)
        else:
            result = LibVerdict(self.request, decided.granted and "twisted" not in data, decided.rule,
                                delegated="twisted" in data)
        result.setenv = data.get("setenv", {})
        for key in ("umask", "nice", "user", "group", "severity"):
            setattr(result, key, data.get(key))
        result.banner = data.get("banner", b"")
        result.messages = diag.records
        return result

    def allowed(self, **kwargs) -> bool:
        return self.verdict(**kwargs).granted


def _endpoint(address: str | None, port: int | None, name: str | None) -> Endpoint:
    if address is None:
        return Endpoint(name=name) if name is not None else Endpoint()
    from pywrap.resolver import parse_numeric

    sockaddr = parse_numeric(address)
    return _side_endpoint(None, address, port, sockaddr, name)


def _side_endpoint(side, address: str | None = None, port: int | None = None, sockaddr=None,
                   name: str | None = None) -> Endpoint:
    if side is not None:
        address, port = side.address, side.port
        sockaddr = None if side.packed is None else (side.family, side.packed)
    if address is None:
        return Endpoint()
    return Endpoint(address, port, sockaddr, _lookup if sockaddr is not None else None, name)


def _lookup(endpoint: Endpoint) -> str:
    from pywrap.numeric import scope_id
    from pywrap.resolver import Resolver, endpoint_name

    # the address text keeps a link-local peer's %scope (getnameinfo's form), which the check compares too
    scope = scope_id(endpoint.address) or 0
    return endpoint_name(Resolver(), endpoint.sockaddr, lambda text: None, scope)


def hosts_ctl(daemon: str, client_name: str | None = None, client_addr: str | None = None,
              user: str | None = None, *, tables: tuple[str, str] | None = None) -> bool:
    """libwrap's hosts_ctl(3): the given values as they are (None or "": "unknown"), no lookups. Each is
    cut to what request_init copies (127 bytes), and the daemon is used as given: a path is not
    shortened to its last component (tcpdmatch does that, the library does not)."""
    daemon, client_name, client_addr, user = (None if v is None else truncate(v)
                                               for v in (daemon, client_name, client_addr, user))
    client = Endpoint(client_addr or UNKNOWN, name=client_name or UNKNOWN)
    request = Request(daemon, client, Endpoint(), os.getpid(), user=user or UNKNOWN)
    return AccessRequest(request).verdict(send_banners=False, tables=tables).granted
