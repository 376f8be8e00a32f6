"""fd 0 -> the two ends of the connection, as the reference finds them (tcpd.md §3 and §6).

Contract: `discover(fd, diag)` returns a `Discovery`: the socket object for fd 0 (a duplicate; fd 0 itself is
never closed), the client and server as (family, packed address, port, printable address) or None, and
whether the service is datagram-style ("sink": a pending datagram must be consumed on refusal). For UDP the
client address comes from peeking at the first datagram, which stays queued for the daemon. Printable
addresses are getnameinfo's numeric form (IPv4-mapped IPv6 kept as `::ffff:a.b.c.d`; an AF_UNIX socket
prints as `localhost`, as in the reference). `check_ip_options` is the reference's KILL_IP_OPTIONS.
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection
import os

from pywrap.diag import Diagnostics
from pywrap.lean import record

PEEK_SIZE = 8192
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
        return Side(family, socket.inet_pton(family, host.partition("%")[0]), port, host)
    return Side(family, None, None, "localhost")


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
