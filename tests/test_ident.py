"""Users (RFC 931 / 1413) through tcpd under inetd: oidentd for the honest case and hostile ident servers
(over-long, binary, trickling, silent, shell metacharacters, ERROR), Debian's tcpd and ours side by side.
The lookup is rule-driven, bounded by the timeout, and a user name reaches a shell only sanitised.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from ident_fixtures import QUERY, IdentServers
from tcpd_sandbox import install_ours, log_lines, run_scenarios

TCP = "127.0.0.1:{port} stream tcp nowait root {tcpd} showargs\n"
UDP = "127.0.0.1:{port} dgram udp wait root {tcpd} showargs\n"
HOSTILE = ["127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24", "127.0.0.25", "127.0.0.26"]


def c_string_reply(kind: str, query: bytes) -> bytes:
    """Replies that only C's reading of a line decides: NUL bytes, %u port numbers, a line the stream cuts."""
    client, server = (int(n) for n in QUERY.search(query).groups())
    head = f"{client} , {server} : USERID : UNIX : ".encode()
    return {
        "nul in the user": head + b"a\0b\r\n",
        "nul before the user": f"{client} , {server} : USERID : UNIX\0: bob\r\n".encode(),
        "ports past 32 bits, signed": f"+{client + 2**32} ,{server - 2**32} : USERID : UNIX : wrap\r\n".encode(),
        "ports overflowing": f"{client + 2**64} , {server} : USERID : UNIX : huge\r\n".encode(),
        "no newline before the end": head + b"cut",
    }[kind]


C_STRING = {"127.0.0.27": "nul in the user", "127.0.0.28": "nul before the user",
            "127.0.0.29": "ports past 32 bits, signed", "127.0.0.30": "ports overflowing",
            "127.0.0.31": "no newline before the end"}


class CStringIdentServers(IdentServers):
    """The hostile servers of ident_fixtures, plus one per C_STRING reply (one reply, then the end)."""

    def __enter__(self) -> CStringIdentServers:
        super().__enter__()
        for address, kind in C_STRING.items():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, 113))
            sock.listen(16)
            sock.settimeout(0.2)
            self.listeners.append(sock)
            threading.Thread(target=self._serve, args=(sock, kind), daemon=True).start()
        return self

    def _answer(self, conn: socket.socket, kind: str) -> None:
        if kind not in C_STRING.values():
            return super()._answer(conn, kind)
        with conn:
            try:
                conn.settimeout(5)
                conn.sendall(c_string_reply(kind, conn.recv(512)))
            except OSError:
                pass

SCENARIOS = {
    "oidentd answers": {"hosts.allow": "showargs: KNOWN@ALL\n", "hosts.deny": "ALL: ALL\n", "conf": TCP,
                        "connections": [{"source": "127.0.0.1"}]},
    "no lookup unless a rule needs it": {"hosts.allow": "showargs: 127.0.0.1\nshowargs: KNOWN@ALL\n", "conf": TCP,
                                         "connections": [{"source": "127.0.0.1"}]},
    "host part decides first": {"hosts.allow": "showargs: KNOWN@127.0.0.9\n", "conf": TCP,
                                "connections": [{"source": "127.0.0.1"}]},
    "hostile servers": {"hosts.allow": "showargs: ALL: rfc931 2 : spawn echo %u >> /D/users\n", "conf": TCP,
                        "read": ["users"], "connections": [{"source": a, "wait": 8} for a in HOSTILE]},
    "never for udp": {"hosts.allow": "showargs: ALL: rfc931 : spawn echo %u >> /D/users\n", "conf": UDP,
                      "read": ["users"], "connections": [{"udp": True, "send": "x", "source": "127.0.0.1"}]},
    "replies read as C strings": {"hosts.allow": "showargs: KNOWN@ALL\n", "conf": TCP,
                                  "connections": [{"source": a, "wait": 8} for a in C_STRING]},
}


@pytest.fixture(scope="module")
def results():
    prefix = install_ours()
    with CStringIdentServers():
        return dict(zip(SCENARIOS, run_scenarios(prefix, list(SCENARIOS.values())), strict=True))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_as_debian(name, results):
    ref, ours = results[name]["reference"], results[name]["ours"]
    assert log_lines(ours) == log_lines(ref)
    assert ours["files"] == ref["files"]


def test_oidentd_user_is_logged(results):
    assert log_lines(results["oidentd answers"]["ours"]) == [(30, "showargs", "connect from root@127.0.0.1 (127.0.0.1)")]
    assert log_lines(results["no lookup unless a rule needs it"]["ours"]) == [
        (30, "showargs", "connect from 127.0.0.1 (127.0.0.1)")]


def test_hostile_replies_end_safely_within_the_timeout(results):
    ours = results["hostile servers"]["ours"]
    assert not os.path.exists("/tmp/pywrap-pwned")
    users = ours["files"]["users"].splitlines()
    # as the reference: an over-long reply still yields its first 127 characters; binary bytes and shell
    # metacharacters reach the shell as "_"; a trickle or silence ends as "unknown" at the timeout
    assert users == ["x" * 127, "___rm_IFS-rf_", "unknown", "unknown",
                     "_touch__IFS_/tmp/pywrap-pwned___touch__IFS_/tmp/pywrap-pwned_", "unknown"]
    for client in ours["clients"]:
        assert client["seconds"] is not None and client["seconds"] < 3.5  # rfc931 2, plus start-up


def test_no_ident_for_datagrams(results):
    assert results["never for udp"]["ours"]["files"]["users"] == "unknown\n"


def test_replies_are_read_as_c_strings(results):
    """A NUL ends the reply, as it ends the reference's C string (the log never shows one); port numbers
    are %u's (sign, 32 bits, saturation) and a line that the stream cuts short is no answer."""
    ours = results["replies read as C strings"]["ours"]
    assert [line[2] for line in log_lines(ours)] == [
        "connect from a@127.0.0.27 (127.0.0.27)", "connect from 127.0.0.28 (127.0.0.28)",
        "connect from wrap@127.0.0.29 (127.0.0.29)", "connect from 127.0.0.30 (127.0.0.30)",
        "connect from 127.0.0.31 (127.0.0.31)"]
