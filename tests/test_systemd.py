"""tcpd under systemd's socket activation (issue 12, item 11), with the real systemd-socket-activate on
loopback in a network namespace of its own (tests/nssystemd.py), Debian's tcpd beside ours.

`systemd-socket-activate -a` passes each connection the systemd way (LISTEN_PID, LISTEN_FDS=1, fd 3; fd 0 is
/dev/null), as a socket unit with Accept=yes does without StandardInput=socket. Debian's tcpd refuses
everybody then; ours moves the connection onto fds 0 and 1 and goes on as under inetd. `--inetd` is the
StandardInput=socket form. Without -a the service gets the listening socket (Accept=no): refused, with an
error in syslog. A datagram socket without -a is served as inetd's `dgram wait`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
from sandbox import DEFAULT_ETC
from tcpd_sandbox import install_ours

HERE = os.path.dirname(os.path.abspath(__file__))
ETC = {**DEFAULT_ETC, "hosts.allow": "probe: 127.0.0.1\n", "hosts.deny": "ALL: ALL\n"}
BOTH = ["127.0.0.1", "127.0.0.2"]  # granted, refused
RUNS = {
    "listen_fds": {"args": ["-l", "127.0.0.1:{port}", "-a", "{tcpd}", "{probe}", "x"], "sources": BOTH},
    "listen_fds, Debian's tcpd": {"args": ["-l", "127.0.0.1:{port}", "-a", "{tcpd}", "{probe}", "x"],
                                  "sources": BOTH, "tcpd": "/usr/sbin/tcpd"},
    "inetd form": {"args": ["-l", "127.0.0.1:{port}", "--inetd", "-a", "{tcpd}", "{probe}", "x"],
                   "sources": BOTH},
    "listening socket": {"args": ["-l", "127.0.0.1:{port}", "{tcpd}", "{probe}"], "sources": ["127.0.0.1"],
                         "accept": False},
    "datagram, granted": {"args": ["-d", "-l", "127.0.0.1:{port}", "{tcpd}", "{probe}"],
                          "sources": ["127.0.0.1"], "accept": False},
    "datagram, refused": {"args": ["-d", "-l", "127.0.0.1:{port}", "{tcpd}", "{probe}"],
                          "sources": ["127.0.0.2"], "accept": False},
}
GRANTED = (30, "probe", "connect from 127.0.0.1 (127.0.0.1)")
REFUSED = (28, "probe", "refused connect from 127.0.0.2 (127.0.0.2)")


@pytest.fixture(scope="module")
def results() -> dict:
    prefix = install_ours(REFUSE_PAUSE="1")  # REAL_DAEMON_DIR does not matter: the probe is an absolute path
    with tempfile.TemporaryDirectory(prefix="pywrap-systemd-spec-") as tmp:
        os.chmod(tmp, 0o755)
        spec = {"prefix": prefix, "workdir": tmp, "etc": ETC, "runs": RUNS}
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        proc = subprocess.run(["unshare", "-m", "-n", "--propagation", "private", sys.executable,
                               os.path.join(HERE, "nssystemd.py"), spec_path, out_path],
                              capture_output=True, text=True, timeout=600, cwd=HERE)
        assert proc.returncode == 0, proc.stderr[-4000:]
        with open(out_path) as f:
            return json.load(f)


def lines(run: dict) -> list[tuple[int, str, str]]:
    return [(e["pri"], e["ident"], e["text"]) for e in run["log"]]


def received(run: dict) -> list[str]:
    return [c["received"] for c in run["clients"]]


def report(text: str) -> dict:
    return json.loads(text)


def test_connection_on_fd_3_is_served_like_one_from_inetd(results):
    run = results["listen_fds"]
    granted, refused = received(run)
    probe = report(granted)
    assert probe["argv"] == ["x"]
    assert probe["fds"] == ["socket", "socket", "other", None]  # fds 0 and 1 the client, fd 3 closed
    assert probe["listen"] == {}  # LISTEN_PID / LISTEN_FDS are not passed on to the daemon
    assert refused == ""
    assert lines(run) == [GRANTED, REFUSED]


def test_debian_refuses_a_connection_on_fd_3(results):
    """README, differences: Debian's tcpd only looks at fd 0."""
    run = results["listen_fds, Debian's tcpd"]
    assert received(run) == ["", ""]
    texts = [text for _, _, text in lines(run)]
    assert texts.count("warning: can't get client address: Socket operation on non-socket") == 2
    assert not any("connect from" in text for text in texts)


def test_inetd_form_still_works(results):
    run = results["inetd form"]
    granted, refused = received(run)
    assert report(granted)["fds"][:2] == ["socket", "socket"]
    assert refused == ""
    assert lines(run) == [GRANTED, REFUSED]


def test_listening_socket_is_refused_with_an_error(results):
    run = results["listening socket"]
    assert received(run) == [""]
    assert lines(run) == [(27, "probe", "error: the socket passed on fd 3 (LISTEN_FDS) is a listening socket: "
                                        "tcpd serves one connection (a socket unit needs Accept=yes)")]
    assert run["status"] == 1


def test_datagram_socket_is_served_like_inetd_dgram_wait(results):
    granted = results["datagram, granted"]
    probe = report(received(granted)[0])
    assert probe["datagram"] == "hello" and probe["listen"] == {}
    assert lines(granted) == [GRANTED]
    refused = results["datagram, refused"]
    assert received(refused) == [""]
    assert lines(refused) == [REFUSED]
