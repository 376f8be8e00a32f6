"""RFC 931 / 1413 ident client: who is the user at the other end of this TCP connection?

Contract: `ident_user(client, server, timeout)` -> the user name the client host's identd reports, or
"unknown". It connects from the server's address to the client's port 113, sends `<client port>,<server
port>\\r\\n` and reads one reply line, all within one deadline. A reply counts only if it is
`<n> , <n> : USERID : <os> : <user>` with the connection's own ports; the user is the first run of
non-blank characters after the third colon (at most 255, stored as 127). Anything else, any error or
timeout: "unknown".
"""

from __future__ import annotations

import re
import socket
import time

from pywrap.endpoints import Side

IDENT_PORT = 113
MAX_REPLY = 511
REPLY = re.compile(rb"^\s*(\d+)\s*,\s*(\d+)\s*:\s*USERID\s*:\s*[^:]+:\s*(\S+)")


def ident_user(client: Side, server: Side, timeout: float) -> str:
    if client.packed is None or server.packed is None or client.family != server.family:
        return "unknown"
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(client.family, socket.SOCK_STREAM) as sock:
            sock.bind((server.address.partition("%")[0], 0))
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.connect((client.address, IDENT_PORT))
            sock.sendall(f"{client.port},{server.port}\r\n".encode())
            reply = b""
            while b"\n" not in reply and len(reply) < MAX_REPLY:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(MAX_REPLY - len(reply))
                if not chunk:
                    break
                reply += chunk
    except (OSError, ValueError):
        return "unknown"
    match = REPLY.match(reply.split(b"\n", 1)[0])
    if match is None or int(match.group(1)) != client.port or int(match.group(2)) != server.port:
        return "unknown"
    return match.group(3)[:255][:127].decode("latin-1")
