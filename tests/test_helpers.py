"""try-from and safe_finger beside Debian's: try-from under a real inetd (what it prints to the client),
safe_finger with a fake finger (binary bytes, long lines, huge output, exit codes, no finger at all) found
through its fixed PATH in a private /usr/sbin, whether or not Debian's finger is installed in /usr/bin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
from tcpd_sandbox import install_ours, run_scenarios

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def prefix():
    return install_ours()


def test_try_from_prints_what_tcpd_learns(prefix):
    scenario = {"conf": "127.0.0.1:{port} stream tcp nowait root {tcpd} try-from\n",
                "tcpd": {"reference": "/usr/sbin/try-from", "ours": f"{prefix}/sbin/try-from"},
                "connections": [{"source": "127.0.0.1"}, {"source": "127.0.0.2"}]}
    (result,) = run_scenarios(prefix, [scenario])
    ours = [c["received"] for c in result["ours"]["clients"]]
    assert ours == [c["received"] for c in result["reference"]["clients"]]
    lines = ours[0].splitlines()
    assert lines[0] == "client address  (%a): 127.0.0.1"
    assert lines[1] == "client hostname (%n): localhost"
    assert lines[6] == "server process  (%d): try-from"
    assert lines[7] == "server info     (%s): try-from@localhost"


FINGERS = {
    "binary and backslashes": 'printf "hello\\001\\377\\\\\\\\ world\\n\\tend"; exit 0',
    "long lines": "head -c 300 /dev/zero | tr '\\0' x; echo; head -c 129 /dev/zero | tr '\\0' y; exit 3",
    "huge": "head -c 150000 /dev/zero | tr '\\0' z; exit 0",
    "arguments": 'echo "$0" "$@"; exit 0',
}


def run_both(script: str | None, args: list[str]) -> tuple[tuple, tuple]:
    """(rc, stdout, stderr) of Debian's safe_finger and ours, each finding `finger` = script in /usr/sbin."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        sbin = os.path.join(tmp, "sbin")
        os.mkdir(sbin)
        subprocess.run(["cp", "/usr/sbin/safe_finger", sbin], check=True)
        if script is not None:
            with open(os.path.join(sbin, "finger"), "w") as f:
                f.write("#!/bin/sh\n" + script + "\n")
            os.chmod(os.path.join(sbin, "finger"), 0o755)
        # The fake must be the only finger on safe_finger's PATH (/bin:/usr/bin:/sbin:/usr/sbin; /bin is
        # /usr/bin on Debian 12): a private /usr/bin of links to everything in the real one but finger.
        inner = (f"mkdir {tmp}/real-bin {tmp}/bin && mount --bind /usr/bin {tmp}/real-bin && "
                 f"for f in {tmp}/real-bin/*; do [ \"${{f##*/}}\" = finger ] || ln -s \"$f\" {tmp}/bin/; done && "
                 f"mount --bind {tmp}/bin /usr/bin && mount --bind {sbin} /usr/sbin && "
                 f"{{ /usr/sbin/safe_finger \"$@\" > {tmp}/ref.out 2> {tmp}/ref.err; echo $? > {tmp}/ref.rc; }}; "
                 f"{{ {sys.executable} -m pywrap.cli.safe_finger \"$@\" > {tmp}/ours.out 2> {tmp}/ours.err; "
                 f"echo $? > {tmp}/ours.rc; }}")
        subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner, "sh", *args],
                       check=True, cwd=ROOT, timeout=120)

        def read(name: str) -> tuple:
            with open(f"{tmp}/{name}.rc") as rc, open(f"{tmp}/{name}.out", "rb") as out, \
                    open(f"{tmp}/{name}.err", "rb") as err:
                return int(rc.read()), out.read(), err.read()

        return read("ref"), read("ours")


@pytest.mark.parametrize("name", list(FINGERS))
def test_safe_finger_agrees(name):
    ref, ours = run_both(FINGERS[name], ["alice@example.com", "-l"])
    assert ours == ref
    if name == "huge":
        assert ours[1].endswith(b"\n\n Input truncated to 100000 bytes...\n")
    if name == "arguments":
        assert b"finger alice@example.com -l" in ours[1]


def test_safe_finger_without_finger():
    ref, ours = run_both(None, ["x"])
    assert ours == ref
    assert ours[0] == 1 and ours[2] == b"finger: No such file or directory\n"


def test_safe_finger_drops_root():
    ref, ours = run_both("id -u", [])
    assert ours == ref
    assert ours[1].strip() == str(__import__("pwd").getpwnam("nobody").pw_uid).encode()
