"""A /dev/log that nobody reads never holds a connection for long: every line of a process shares one wait
(settings.LOG_BUDGET), then lines are dropped, counted, and the count is logged once a line gets through.

Through the installed tcpd on a real loopback connection, in a private mount namespace whose /dev/log is
bound but never read and whose queue is full before tcpd starts (tests/nsbounded.py). Every line of tcpd's
then waits; tables that make a dozen warnings would cost a dozen waits. The bound is the run's time limit:
past it the run counts as a failure; nothing measures how long it took. Then the client, not the log, shows
the verdict. Debian's tcpd, beside it, waits on its very first line until the log is read. The dropped-lines
report is checked in-process on a socket of our own in a temporary directory.
"""

from __future__ import annotations

import socket

import pytest
from bounded_sandbox import run
from tcpd_sandbox import install_ours

from pywrap import log, settings

SLACK = 8  # seconds for starting Python and the rest of tcpd's work, on a loaded machine
BROKEN = "echo 127.0.0.1\n" * 12  # twelve lines without ":": twelve warnings


@pytest.fixture(scope="module")
def installed() -> str:
    return install_ours(REFUSE_PAUSE="0")  # tables in /etc (private to the namespace), no pause


@pytest.mark.parametrize(("tables", "received"), [
    ({"hosts.allow": BROKEN + "echo: 127.0.0.1\n"}, "ran\n"),
    ({"hosts.allow": BROKEN, "hosts.deny": "echo: ALL\n"}, ""),
], ids=["granted", "refused"])
def test_a_log_socket_nobody_reads_costs_the_budget_not_a_wait_per_line(tables, received, installed):
    case = {"run": "tcpd", "files": tables, "args": ["/bin/echo", "ran"],
            "timeout": settings.LOG_BUDGET + SLACK}
    (result,) = run([case], installed, stuck_log=True)
    assert result["rc"] == 0, result  # "timeout": the lines waited longer than the budget allows
    assert result["received"] == received


def test_the_reference_waits_for_a_log_socket_nobody_reads():
    case = {"run": "tcpd", "tcpd": "/usr/sbin/tcpd", "files": {"hosts.allow": "echo: 127.0.0.1\n"},
            "args": ["/bin/echo", "ran"], "timeout": settings.LOG_BUDGET + SLACK}
    (result,) = run([case], stuck_log=True)
    assert result["rc"] == "timeout"  # its one line, `connect from`, waits until syslog reads again
    assert result["received"] == ""


@pytest.fixture
def full_socket(tmp_path, monkeypatch):
    """A log socket of our own whose queue is full, and a fresh budget of 0.2 s for this process."""
    path = str(tmp_path / "log")
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(path)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    try:
        while True:
            filler.sendto(b"x", path)
    except BlockingIOError:
        pass
    monkeypatch.setattr(settings, "LOG_BUDGET", 0.2)
    monkeypatch.setattr(log, "BUDGET", log.LogBudget())
    yield path, reader
    reader.close()
    filler.close()


def drain(reader: socket.socket) -> list[bytes]:
    reader.setblocking(False)
    lines = []
    try:
        while True:
            lines.append(reader.recv(65536))
    except BlockingIOError:
        return lines


def test_dropped_lines_are_counted_and_said_when_the_socket_takes_lines_again(full_socket):
    path, reader = full_socket
    client = log.SyslogClient("echo", path=path)
    for n in range(5):
        client.log(log.LOG_ERR, f"warning: number {n}")
    assert log.BUDGET.dropped == 5
    drain(reader)  # the log daemon reads again
    client.log(log.LOG_INFO, "connect from 127.0.0.1 (127.0.0.1)")
    lines = [line.split(b": ", 1)[1] for line in drain(reader)]
    assert lines == [b"warning: 5 log lines dropped: " + path.encode() + b" did not take them within the 0.2 s "
                     b"this process may wait for it", b"connect from 127.0.0.1 (127.0.0.1)"]
    assert log.BUDGET.dropped == 0


def test_close_says_how_many_lines_were_dropped(full_socket):
    path, reader = full_socket
    client = log.SyslogClient("echo", path=path)
    client.log(log.LOG_INFO, "connect from 127.0.0.1 (127.0.0.1)")
    drain(reader)
    client.close()  # tcpd's last word before it execs the daemon
    assert [line.split(b": ", 1)[1] for line in drain(reader)] == [
        b"warning: 1 log line dropped: " + path.encode() + b" did not take it within the 0.2 s this process may "
        b"wait for it"]
