"""Ident (RFC 1413) servers for the tests, on loopback port 113: oidentd for honest answers about 127.0.0.1, and
small hostile servers of our own on 127.0.0.21-26 (a client connecting from that address gets that server).
All are stopped when the tests are done (oidentd by pid, the hostile ones by closing their sockets).
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time

from debian import OIDENTD

QUERY = re.compile(rb"(\d+)\s*,\s*(\d+)")


def _reply(kind: str, query: bytes) -> list[tuple[float, bytes]]:
    """(delay, bytes) chunks a hostile server sends for one query."""
    m = QUERY.search(query)
    ports = f"{m.group(1).decode()} , {m.group(2).decode()}" if m else "0 , 0"
    honest = f"{ports} : USERID : UNIX : ".encode()
    if kind == "long":
        return [(0, honest + b"x" * 20000)]  # no newline, far too long
    if kind == "binary":
        return [(0, honest + b"\x01\xff;rm$IFS-rf\x7f\r\n")]
    if kind == "trickle":
        return [(1.0, bytes([b])) for b in honest + b"slowpoke\r\n"]
    if kind == "silent":
        return [(30, b"")]
    if kind == "shell":
        return [(0, honest + b"`touch${IFS}/tmp/pywrap-pwned`$(touch${IFS}/tmp/pywrap-pwned)\r\n")]
    if kind == "error":
        return [(0, f"{ports} : ERROR : NO-USER\r\n".encode())]
    raise ValueError(kind)


HOSTILE = {"127.0.0.21": "long", "127.0.0.22": "binary", "127.0.0.23": "trickle", "127.0.0.24": "silent",
           "127.0.0.25": "shell", "127.0.0.26": "error"}


class IdentServers:
    def __enter__(self) -> IdentServers:
        self.stopping = threading.Event()
        self.listeners = []
        for address, kind in HOSTILE.items():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, 113))
            sock.listen(16)
            sock.settimeout(0.2)
            self.listeners.append(sock)
            threading.Thread(target=self._serve, args=(sock, kind), daemon=True).start()
        self.oidentd = subprocess.Popen([OIDENTD, "-i", "-q", "-S", "-a", "127.0.0.1", "-p", "113"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", 113), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("oidentd did not start")

    def _serve(self, listener: socket.socket, kind: str) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn, kind), daemon=True).start()

    def _answer(self, conn: socket.socket, kind: str) -> None:
        with conn:
            try:
                conn.settimeout(5)
                query = conn.recv(512)
                for delay, chunk in _reply(kind, query):
                    if self.stopping.wait(delay):
                        return
                    conn.sendall(chunk)
            except OSError:
                pass

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for sock in self.listeners:
            sock.close()
        self.oidentd.terminate()
        self.oidentd.wait(timeout=5)
