"""Syslog for tcpd, in the reference's formats, written to /dev/log the way glibc's syslog(3) writes it.

Contract: `SyslogClient(ident, facility)` sends `<PRI>Mmm dd hh:mm:ss ident[pid]: text` datagrams (glibc's
wire format, byte for byte; texts are bytes as latin-1, so names with any byte pass through unchanged, which
Python's own syslog module cannot do). A missing or full log socket drops the line: logging never blocks a
connection for long and never fails it. `SyslogDiagnostics` is tcpd's Diagnostics sink: `warning:
[FILE, line N: ]TEXT` and `error: ...` at LOG_ERR, informational lines at LOG_INFO, as the reference words
them. Nothing here ever writes to fds 0-2 (under inetd they are the client's socket).
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection
import os
import time

from pywrap.diag import Diagnostics
from pywrap.text import encode

LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG = 3, 4, 5, 6, 7
LOG_DAEMON = 3 << 3
SEVERITY_MASK = 7
LOG_PATH = "/dev/log"
SEND_TIMEOUT = 2.0  # seconds; a log daemon that does not read must not hold the connection


class SyslogClient:
    def __init__(self, ident: str, facility: int = LOG_DAEMON, path: str = LOG_PATH) -> None:
        self.ident = ident
        self.facility = facility
        self.path = path
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.settimeout(SEND_TIMEOUT)
            sock.connect(self.path)
            return sock
        except OSError:
            return None

    def log(self, priority: int, text: str) -> None:
        if priority & ~SEVERITY_MASK == 0:
            priority |= self.facility
        stamp = time.strftime("%b %e %H:%M:%S")
        line = f"<{priority}>{stamp} {self.ident}[{os.getpid()}]: {text}"
        data = encode(line)
        for _ in range(2):  # once more on a fresh socket, as glibc does after an error
            if self.sock is None:
                self.sock = self._connect()
                if self.sock is None:
                    return
            try:
                self.sock.send(data)
                return
            except OSError:
                self.close()

    def close(self) -> None:
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
