"""Every installed tool answers `--help` with its usage on stdout and exit status 0 (issue 12, item 12).

tcpd is not among them: its arguments are the daemon's, and it keeps the reference's behaviour. safe_finger
takes `--help` only as its only argument (finger itself has no such option); try-from likewise (its
arguments are otherwise ignored). Each program is the installed one, run with an empty environment.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from tcpd_sandbox import install_ours

PROGRAMS = ["tcpdmatch", "tcpdchk", "try-from", "safe_finger"]


@pytest.fixture(scope="module")
def prefix() -> str:
    return install_ours()


def run_installed(prefix: str, program: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["env", "-i", os.path.join(prefix, "sbin", program), *args], capture_output=True,
                          text=True, cwd="/", stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_prints_usage_on_stdout_and_exits_0(prefix, program):
    proc = run_installed(prefix, program, "--help")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("usage: ") and program in first, proc.stdout
    assert "client address" not in proc.stdout  # try-from printed help, not its eight lines


def test_tcpdmatch_usage_errors_are_unchanged(prefix):
    """--help is ours; a real usage error still goes to stderr with exit status 2."""
    proc = run_installed(prefix, "tcpdmatch", "--bogus")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[:2] == ["tcpdmatch: unrecognized option '--bogus'",
                                            f"usage: {prefix}/sbin/tcpdmatch [-d] [-i inet_conf] daemon[@host] "
                                            f"[user@]host"]
