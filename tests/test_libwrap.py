"""The library API: hosts_ctl() against Debian's tcpdmatch on the differential corpus, options as data and
never behind the caller's back, and the socketserver mixin and asyncio helper under 200 concurrent
loopback clients from 127.0.0.x with some sources denied."""

from __future__ import annotations

import asyncio
import os
import socket
import socketserver
import threading
from collections import Counter

import pytest
from compare import verdicts
from generator import generate
from sandbox import run_cases

from pywrap import AccessRequest, WrappedServerMixin, hosts_ctl, wrap_asyncio

NUMERIC = ("10.0.0.1", "10.0.0.5", "10.1.2.3", "10.2.2.3", "8.1.2.3", "127.0.0.1", "::1", "2001:db8::5",
           "::ffff:10.0.0.1", "10.0.0.12", "10.0.0.255")


def test_hosts_ctl_agrees_with_debian_tcpdmatch():
    cases = []
    for case in generate(404, 1500):
        daemon, client = case["args"]
        if client.rpartition("@")[2] in NUMERIC and "@" not in daemon and not daemon.startswith("/"):
            cases.append({**case, "ours_program": "hosts_ctl"})
    results = run_cases(cases)
    assert len(cases) > 300
    for case, result in zip(cases, results, strict=True):
        assert verdicts(result["ours"]["stdout"]) == [
            v if v != "delegated" else "denied" for v in verdicts(result["reference"]["stdout"])], case


@pytest.fixture
def tables(tmp_path):
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    (tmp_path / "banners").mkdir()
    (tmp_path / "banners" / "echo").write_text("welcome %a\n")
    allow.write_text(f"echo: 127.0.0.1: setenv FOO bar : umask 027 : banners {tmp_path}/banners\n"
                     "twisty: ALL: twist echo twisted\n")
    deny.write_text("echo: 127.0.0.11 127.0.0.12 127.0.0.13 127.0.0.14 127.0.0.15\n")
    return str(allow), str(deny)


def test_options_come_back_as_data(tables):
    request = AccessRequest.from_endpoints("echo", "127.0.0.1", 4000)
    verdict = request.verdict(send_banners=False, tables=tables)
    assert verdict.granted and verdict.line == 1 and verdict.file == tables[0]
    assert verdict.setenv == {"FOO": "bar"} and verdict.umask == 0o27
    assert verdict.banner == b"welcome 127.0.0.1\r\n"
    assert "FOO" not in os.environ  # never applied behind the caller's back
    assert not hosts_ctl("echo", None, "127.0.0.11", tables=tables)
    assert hosts_ctl("echo", "host.example.com", "127.0.0.99", "alice", tables=tables)


def test_twist_is_refused_unless_asked_for(tables):
    verdict = AccessRequest.from_endpoints("twisty", "127.0.0.1").verdict(tables=tables)
    assert not verdict.granted and not verdict.delegated
    assert any('"twist" is refused by the library' in text for _, _, text in verdict.messages)


CLIENTS = [f"127.0.0.{1 + n % 20}" for n in range(200)]
DENIED = {f"127.0.0.{n}" for n in range(11, 16)}


def hammer(port: int) -> Counter:
    """200 concurrent clients; what each source address received."""
    got: Counter = Counter()
    lock = threading.Lock()

    def one(source: str) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0)) as sock:
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        with lock:
            got[(source, data)] += 1

    threads = [threading.Thread(target=one, args=(source,)) for source in CLIENTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def check(got: Counter, handled: Counter) -> None:
    assert sum(got.values()) == len(CLIENTS)  # none lost
    for source, data in got:
        if source in DENIED:
            assert data == b"" and handled[source] == 0  # refused: not a byte, no handler
        else:
            assert data.endswith(b"hello\n"), (source, data)
    assert sum(handled.values()) == sum(1 for c in CLIENTS if c not in DENIED)


def test_socketserver_mixin_under_load(tables):
    handled: Counter = Counter()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            handled[self.client_address[0]] += 1
            self.wfile.write(b"hello\n")

    class Server(WrappedServerMixin, socketserver.ThreadingTCPServer):
        wrap_daemon = "echo"
        wrap_tables = tables
        daemon_threads = True
        request_queue_size = 256

    with Server(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        got = hammer(server.server_address[1])
        server.shutdown()
    check(got, handled)


def test_asyncio_helper_under_load(tables):
    handled: Counter = Counter()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handled[writer.get_extra_info("peername")[0]] += 1
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    async def main() -> Counter:
        server = await asyncio.start_server(wrap_asyncio("echo", handler, tables=tables), "127.0.0.1", 0,
                                            backlog=256)
        port = server.sockets[0].getsockname()[1]
        got = await asyncio.to_thread(hammer, port)
        server.close()
        await server.wait_closed()
        return got

    check(asyncio.run(main()), handled)


def test_an_edit_is_seen_by_the_next_call(tables):
    allow, deny = tables
    assert hosts_ctl("echo", None, "127.0.0.1", tables=tables)
    with open(allow, "w") as f:
        f.write("echo: 127.0.0.1: deny\n")
    assert not hosts_ctl("echo", None, "127.0.0.1", tables=tables)


def test_from_socket_on_a_datagram_leaves_it_for_the_caller(tables):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.11", 0))
        client.sendto(b"ping", server.getsockname())
        verdict = AccessRequest.from_socket(server, "echo").verdict(tables=tables)
        assert not verdict.granted and verdict.line == 1 and verdict.file == tables[1]
        assert verdict.request.client.address == "127.0.0.11"
        assert server.recvfrom(16)[0] == b"ping"  # only peeked at
