"""tcpd under resource limits, through a real openbsd-inetd (tests/nstcpd.py): not a byte to the client
that is not the daemon's, and every denial logged and paused.

inetd runs bash, which sets the limit (RLIMIT_AS with `ulimit -v`, RLIMIT_NOFILE with `ulimit -n`) and
execs our installed tcpd with the daemon's name as argv[0] (`exec -a`), as inetd itself would; the daemon is
/bin/echo. Under a small RLIMIT_AS the interpreter cannot start: the dynamic loader cannot map a library,
Python's initialisation fails ("Fatal Python error"), or an import does (a traceback). All of them wrote
to fd 2, which was the client's socket; the same interpreter, started the same way under the same limit
with its stderr in a file, shows which of the three a limit gives. Under a small RLIMIT_NOFILE tcpd
exited silently and at once (an import failed); now every denial says why in syslog and pauses first, as
a refusal does: the client sees its connection close only after that syslog line has arrived.
"""

from __future__ import annotations

import pytest
from tcpd_sandbox import install_ours, run_scenarios

CONF = "127.0.0.1:{port} stream tcp nowait root /bin/bash bash {dir}/limited.sh {tcpd}\n"
START = "import sys; sys.path.insert(0, '{libdir}'); import pywrap.tcpd"  # what the launcher has Python do
CLIENT = {"source": "127.0.0.1", "wait": 20, "until_closed": True}  # the bound: past it, a failure
STAGES = {"loader": "error while loading shared libraries", "init": "Fatal Python error",
          "import": "Traceback (most recent call last)"}


@pytest.fixture(scope="module")
def prefix() -> str:
    return install_ours(REFUSE_PAUSE="2", WATCHDOG="5")


def scenario(limit: str, probe: str = "") -> dict:
    script = f"{limit}\n{probe}\nexec -a /bin/echo \"$1\" ran\n"
    return {"conf": CONF, "files": {"limited.sh": script}, "connections": [CLIENT], "variants": ["ours"],
            "read": ["probe"] if probe else []}


def stage(stderr: str | None) -> str | None:
    return next((name for name, text in STAGES.items() if text in (stderr or "")), None)


def test_nothing_the_interpreter_says_reaches_the_client(prefix):
    limits = range(8 << 10, 16 << 10, 256)  # KiB: 8 MiB to 16 MiB
    probe = (f"{{ /usr/bin/python3 -I -S -c \"{START.format(libdir=prefix + '/lib/pywrap')}\" "
             f"< /dev/null > /dev/null 2> /D/probe; }} 2> /dev/null")  # bash's own "Aborted" too
    results = run_scenarios(prefix, [scenario(f"ulimit -v {kib}", probe) for kib in limits])
    stages = set()
    for kib, result in zip(limits, results, strict=True):
        ours = result["ours"]
        (client,) = ours["clients"]
        assert client["closed"], f"{kib} KiB: still open after {CLIENT['wait']} s"
        assert client["received"] in ("", "ran\n"), f"{kib} KiB: {client['received']!r}"
        stages.add(stage(ours["files"]["probe"]))
    # the limits cover every way the interpreter fails, and room enough for it to work
    assert {"loader", "init", "import", None} <= stages, stages


@pytest.mark.parametrize("files", [4, 5, 6, 7, 8, 10])
def test_too_few_descriptors_deny_with_a_reason_and_a_pause(prefix, files):
    (result,) = run_scenarios(prefix, [scenario(f"ulimit -n {files}")])
    ours = result["ours"]
    (client,) = ours["clients"]
    lines = [(e["pri"], e["text"]) for e in client["log"] if e["ident"] != "inetd"]
    assert client["closed"], lines
    if client["received"] == "ran\n":  # enough descriptors for all of it
        assert files > 5 and lines == [(30, "connect from 127.0.0.1 (127.0.0.1)")]
        return
    assert client["received"] == ""
    why = [n for n, e in enumerate(client["log"]) if e["pri"] == 27 and "Too many open files" in e["text"]]
    assert why, lines
    assert client["lines_before_close"] > why[0], lines  # the pause: logged, then the connection closed
