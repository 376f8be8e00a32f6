"""Syslog for tcpd, in the reference's formats, written to /dev/log the way glibc's syslog(3) writes it.

Contract: `SyslogClient(ident, facility)` sends `<PRI>Mmm dd hh:mm:ss ident[pid]: text` datagrams (glibc's
wire format, byte for byte; texts are bytes as latin-1, so names with any byte pass through unchanged, which
Python's own syslog module cannot do). A missing log socket drops the line. A full one (a log daemon that
does not read) makes a line wait, but all the lines of one process wait settings.LOG_BUDGET seconds at most
together; after that a line the socket cannot take at once is dropped and counted, and the count is logged
before the next line that gets through (or at `close()`). So logging never holds a connection for long,
however many lines it has, and never fails it. `SyslogDiagnostics` is tcpd's Diagnostics sink: `warning:
[FILE, line N: ]TEXT` and `error: ...` at LOG_ERR, informational lines at LOG_INFO, as the reference words
them. Nothing here ever writes to fds 0-2 (under inetd they are the client's socket).
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection
import os
import time

from pywrap import settings
from pywrap.diag import Diagnostics
from pywrap.text import encode

LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG = 3, 4, 5, 6, 7
LOG_DAEMON = 3 << 3
SEVERITY_MASK = 7
LOG_PATH = "/dev/log"


class LogBudget:
    """The time this process's lines may still wait for a full log socket, shared by every SyslogClient
    (tcpd makes several), and how many lines were dropped since that time ran out."""

    def __init__(self) -> None:
        self.left: float | None = None  # seconds; read from settings at the first line
        self.dropped = 0

    def send(self, sock: socket.socket, data: bytes) -> None:
        """sock.send within what is left; once nothing is, without waiting at all (BlockingIOError)."""
        if self.left is None:
            self.left = settings.LOG_BUDGET
        sock.settimeout(max(self.left, 0.0))  # 0.0: non-blocking
        start = time.monotonic()
        try:
            sock.send(data)
        finally:
            self.left -= time.monotonic() - start


BUDGET = LogBudget()


class SyslogClient:
    def __init__(self, ident: str, facility: int = LOG_DAEMON, path: str = LOG_PATH) -> None:
        self.ident = ident
        self.facility = facility
        self.path = path
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.connect(self.path)
            return sock
        except OSError:
            return None

    def log(self, priority: int, text: str) -> None:
        if priority & ~SEVERITY_MASK == 0:
            priority |= self.facility
        if BUDGET.dropped:  # said first, if the socket takes anything now: those lines came first
            self._report_dropped()
        if self._deliver(priority, text) == "full":
            BUDGET.dropped += 1

    def _deliver(self, priority: int, text: str) -> str:
        """"sent", "full" (the socket's queue stayed full: the line is dropped) or "gone" (no log socket)."""
        stamp = time.strftime("%b %e %H:%M:%S")
        data = encode(f"<{priority}>{stamp} {self.ident}[{os.getpid()}]: {text}")
        for _ in range(2):  # once more on a fresh socket, as glibc does after an error
            if self.sock is None:
                self.sock = self._connect()
                if self.sock is None:
                    return "gone"
            try:
                BUDGET.send(self.sock, data)
                return "sent"
            except (TimeoutError, BlockingIOError):  # a full queue: a fresh socket would not help
                return "full"
            except OSError:
                self._discard()
        return "gone"

    def _report_dropped(self) -> None:
        count = BUDGET.dropped
        lines, them = (f"{count} log lines", "them") if count > 1 else ("1 log line", "it")
        text = (f"warning: {lines} dropped: {self.path} did not take {them} within the "
                f"{settings.LOG_BUDGET:g} s this process may wait for it")
        if self._deliver(LOG_WARNING | self.facility, text) == "sent":
            BUDGET.dropped = 0

    def close(self) -> None:
        if self.sock is not None and BUDGET.dropped:  # the last chance to say so
            self._report_dropped()
        self._discard()

    def _discard(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def verdict_line(request, granted: bool) -> str:
    """The reference's `connect from CLIENT (ADDRESS)` / `refused connect from ...` text."""
    text = f"connect from {request.client_info()} ({request.client.address})"
    return text if granted else f"refused {text}"


class SyslogDiagnostics(Diagnostics):
    def __init__(self, client: SyslogClient) -> None:
        super().__init__()
        self.client = client

    def emit(self, kind: str, text: str) -> None:
        if kind == "info":
            self.client.log(LOG_INFO, text)
            return
        where = "" if self.context is None else f"{self.context[0]}, line {self.context[1]}: "
        self.client.log(LOG_ERR, f"{kind}: {where}{text}")
