"""fd 0 -> the two ends of the connection, as the reference finds them (tcpd.md §3 and §6).

Contract: `discover(fd, diag)` returns a `Discovery`: the socket object for fd 0 (a duplicate; fd 0 itself is
never closed), the client and server as (family, packed address, port, printable address) or None, and
whether the service is datagram-style ("sink": a pending datagram must be consumed on refusal). For UDP the
client address comes from peeking at the first datagram, which stays queued for the daemon. Printable
addresses are getnameinfo's numeric form (IPv4-mapped IPv6 kept as `::ffff:a.b.c.d`; an AF_UNIX socket
prints as `localhost`, as in the reference). `check_ip_options` is the reference's KILL_IP_OPTIONS.
`take_listen_fds(environ)` first moves a connection passed the systemd way (fd 3) onto fds 0 and 1.
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection
import os
import stat  # free: os has imported it already

from pywrap.diag import Diagnostics
from pywrap.lean import record

TYPE_CHECKING = False  # no `typing` import at run time: start-up is paid per connection
if TYPE_CHECKING:
    from collections.abc import MutableMapping

PEEK_SIZE = 8192
LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
LISTEN_FD = 3  # sd_listen_fds(3): passed sockets start at SD_LISTEN_FDS_START, 3
IPOPT_EOL, IPOPT_NOP, IPOPT_LSRR, IPOPT_SSRR = 0, 1, 131, 137


class Side(record("Side", "family packed port address")):
    family: int
    packed: bytes | None     # None for AF_UNIX
    port: int | None
    address: str             # what %a / %A and the log lines show
    __slots__ = ()


class Discovery(record("Discovery", "sock client server sink error", defaults=(None,))):
    sock: socket.socket | None
    client: Side | None
    server: Side | None
    sink: bool
    error: str | None  # the strerror text when fd 0 is no socket at all
    __slots__ = ()


def _side(family: int, sockaddr) -> Side:
    if family == socket.AF_INET:
        host, port = sockaddr[0], sockaddr[1]
        return Side(family, socket.inet_pton(family, host), port, host)
    if family == socket.AF_INET6:
        host, port = sockaddr[0], sockaddr[1]
        if len(sockaddr) > 3 and sockaddr[3]:  # a scoped peer, shown as getnameinfo does: fe80::1%lo
            host = socket.getnameinfo(sockaddr, socket.NI_NUMERICHOST)[0]
        return Side(family, socket.inet_pton(family, host.partition("%")[0]), port, host)
    return Side(family, None, None, "localhost")


def take_listen_fds(environ: MutableMapping[str, str]) -> str | None:
    """A connection passed the systemd way (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS=1, the socket on fd 3),
    as `systemd-socket-activate -a` and a socket unit with Accept=yes but without StandardInput=socket pass
    it, is moved onto fds 0 and 1, where tcpd and the daemon after it expect their client (as under inetd);
    fd 3 is closed and the LISTEN_* variables are dropped, so that the daemon never looks for it again.
    Nothing changes when the variables are not for this process or fd 0 already is a socket
    (StandardInput=socket). Returns why the passed sockets cannot be served, or None."""
    pid = environ.get("LISTEN_PID")
    if pid is None:
        return None  # the inetd path: one dictionary lookup
    if pid != str(os.getpid()) or _is_socket(0):
        return None  # meant for another process, or the connection is on fd 0 already (StandardInput=socket)
    count = environ.get("LISTEN_FDS")
    if count != "1":
        return (f"LISTEN_FDS={count}: tcpd serves one connection, passed on fd {LISTEN_FD} "
                f"(a socket unit needs Accept=yes)")
    try:
        listening = _accepts_connections(LISTEN_FD)
    except OSError as e:
        return f"fd {LISTEN_FD} (LISTEN_FDS): {os.strerror(e.errno or 0)}"
    if listening:
        return (f"the socket passed on fd {LISTEN_FD} (LISTEN_FDS) is a listening socket: tcpd serves one "
                f"connection (a socket unit needs Accept=yes)")
    os.dup2(LISTEN_FD, 0)
    os.dup2(LISTEN_FD, 1)
    os.close(LISTEN_FD)
    for name in LISTEN_VARIABLES:
        environ.pop(name, None)  # os.environ: unsetenv, so the daemon exec'ed later never sees them
    return None


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _accepts_connections(fd: int) -> bool:
    """True for a listening stream socket (Accept=no); False for a connection or a datagram socket (which
    is served as under inetd's `dgram wait`). OSError when fd is no socket."""
    sock = socket.socket(fileno=os.dup(fd))  # the C class: no `with`
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    finally:
        sock.close()


def discover(fd: int, diag: Diagnostics) -> Discovery:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError as e:
        text = os.strerror(e.errno or 0)
        diag.warning(f"can't get client address: {text}")
        return Discovery(None, None, None, sink=True, error=text)
    sink = False
    try:
        client = _side(sock.family, sock.getpeername())
    except OSError:
        sink = True  # no peer: a datagram service; peek at the first datagram for the client address
        try:
            _, peer = sock.recvfrom(PEEK_SIZE, socket.MSG_PEEK)
            client = _side(sock.family, peer)
        except OSError as e:
            diag.warning(f"can't get client address: {os.strerror(e.errno or 0)}")
            return Discovery(sock, None, None, sink=True)
    try:
        server = _side(sock.family, sock.getsockname())
    except OSError as e:
        diag.warning(f"getsockname: {os.strerror(e.errno or 0)}")
        server = None
    return Discovery(sock, client, server, sink)


def option_bytes(options: bytes) -> str:
    return "".join(f" {b:02x}" for b in options)


def has_source_route(options: bytes) -> bool:
    """Walk the options as the reference does (after a 4-byte first-hop address, BSD layout)."""
    pos = 4
    while pos < len(options):
        kind = options[pos]
        if kind in (IPOPT_LSRR, IPOPT_SSRR):
            return True
        if kind == IPOPT_EOL:
            return False
        if kind == IPOPT_NOP:
            pos += 1
            continue
        if pos + 1 >= len(options) or options[pos + 1] <= 0:
            return False
        pos += options[pos + 1]
    return False


def read_ip_options(sock: socket.socket) -> bytes:
    return sock.getsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, 40)
