"""The watchdog (settings.WATCHDOG): one bound on a whole tcpd process, whatever it waits for.

Through the installed tcpd under a real openbsd-inetd (tests/nstcpd.py): a client whose name has to come
from a name server that never answers (a UDP socket of this test on a loopback port, named by
DNS_SERVERS), with DNS_TIMEOUT and resolv.conf's timeout far longer than WATCHDOG; tcpd must deny, say so in syslog, pause as a
refusal does, and end the connection. The bound is the client's wait, well below DNS_TIMEOUT: a connection
still open then is a failure; nothing measures how long it took. Then the two timers in a process of
their own: SIGALRM reaches the handler even when whoever started tcpd blocked or ignored it, and a process
stuck in C code, where that handler cannot run, is ended by SIGPROF once its CPU time passes the bound.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
from tcpd_sandbox import install_ours, log_lines, run_scenarios

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT = {"source": "127.0.0.2", "wait": 30, "until_closed": True}  # 127.0.0.2 is not in /etc/hosts


@pytest.fixture(scope="module")
def black_hole() -> int:
    """A name server that never answers: a bound UDP socket nobody reads. Its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_a_name_server_that_never_answers_is_cut_off_by_the_watchdog(black_hole):
    prefix = install_ours(DNS_SERVERS=f"127.0.0.1#{black_hole}", DNS_TIMEOUT="60", WATCHDOG="2",
                          REFUSE_PAUSE="1")
    scenario = {"hosts.allow": "showargs: localhost\n", "variants": ["ours"], "connections": [CLIENT],
                "conf": "127.0.0.1:{port} stream tcp nowait root {tcpd} showargs\n"}
    slow = "nameserver 127.0.0.1\noptions timeout:30 attempts:5\n"  # a try waits 30 s, the whole check 60
    (result,) = run_scenarios(prefix, [scenario], etc={"resolv.conf": slow})
    ours = result["ours"]
    (client,) = ours["clients"]
    lines = log_lines(ours)
    assert client["closed"], lines  # within the client's 30 s: DNS alone would take 60
    assert client["received"] == "", lines
    (line,) = [n for n, e in enumerate(client["log"]) if "watchdog" in e["text"]]
    said = client["log"][line]
    assert (said["pri"], said["ident"]) == (27, "showargs")
    assert said["text"].startswith("error: watchdog: no decision within 2 seconds (in pywrap.resolver.")
    assert said["text"].endswith("): connection refused")
    assert client["lines_before_close"] > line  # said, then paused, then the connection closed


def test_the_default_leaves_room_for_a_name_check_and_an_ident_lookup():
    prefix = install_ours(DNS_TIMEOUT="7", RFC931_TIMEOUT="3")
    proc = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", f"import sys; sys.path.insert(0, "
                           f"'{prefix}/lib/pywrap'); from pywrap import settings; print(settings.WATCHDOG)"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout == "15\n", proc.stderr


def run_armed(code: str, before: str = "") -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter after `before` and a watchdog of 1 s (CPU bound: 2 s)."""
    program = (f"import signal, sys, time; sys.path.insert(0, {ROOT!r}); {before}\n"
               "from pywrap.tcpd import Handover, Watchdog\n"
               "Handover.in_place().arm(1)\n"
               f"try:\n    {code}\nexcept Watchdog as e:\n    print('watchdog:', e)\n")
    return subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("before", ["", "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])",
                                    "signal.signal(signal.SIGALRM, signal.SIG_IGN)"],
                         ids=["default", "blocked", "ignored"])
def test_sigalrm_stops_a_wait_however_tcpd_was_started(before):
    proc = run_armed("time.sleep(100)", before)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("watchdog: no decision within "), proc.stdout


def test_a_process_stuck_in_c_is_ended_by_its_cpu_time():
    proc = run_armed("sum(range(10 ** 12))")  # one C loop, hours long: SIGALRM's handler never gets to run
    assert proc.returncode == -signal.SIGPROF, (proc.returncode, proc.stdout, proc.stderr)
