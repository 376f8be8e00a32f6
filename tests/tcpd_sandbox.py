"""Test-side helper for tcpd end to end: install ours once, run scenarios through nstcpd.py under inetd.

`install_ours()` runs `make install` into a fresh prefix with the reference's compile-time values
(REAL_DAEMON_DIR=/usr/sbin, tables in /etc — private ones inside the namespace), so that the very same
inetd.conf line serves Debian's tcpd and ours. `run_scenarios(prefix, scenarios)` returns, per scenario,
{"reference": ..., "ours": ...} with each client's bytes and the syslog lines.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from sandbox import DEFAULT_ETC


def inherited_ignored() -> int:
    """The signals this test process's children start with ignored (SigIgn bits), apart from SIGPIPE and
    SIGXFSZ, which Python ignores for itself and subprocess restores: usually none, but whatever started
    the suite may have passed some on (one CI parent ignored signal 32), and tcpd must pass them on too."""
    with open("/proc/self/status") as f:
        ignored = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return ignored & ~(1 << 12 | 1 << 24)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_port = [20000 + (os.getpid() % 500) * 40]


def install_ours(**settings: str) -> str:
    prefix = tempfile.mkdtemp(prefix="pywrap-tcpd-")
    atexit.register(shutil.rmtree, prefix, True)
    os.chmod(prefix, 0o755)
    args = [f"{k}={v}" for k, v in settings.items()]
    if "CACHE_DIR" not in settings:
        args.append(f"CACHE_DIR={prefix}/cache")  # the parsed-table cache stays inside the test prefix
    proc = subprocess.run(["make", "-C", ROOT, "install", f"PREFIX={prefix}", *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return prefix


def run_scenarios(prefix: str, scenarios: list[dict], etc: dict | None = None) -> list[dict]:
    base = _port[0]
    _port[0] += 2 * len(scenarios) + 2
    spec = {"prefix": prefix, "scenarios": scenarios, "etc": {**DEFAULT_ETC, **(etc or {})}, "base_port": base}
    with tempfile.TemporaryDirectory(prefix="pywrap-e2e-spec-") as tmp:
        os.chmod(tmp, 0o755)  # daemons run as nobody must reach their files
        spec["workdir"] = tmp  # the runner works in here, so everything goes with it
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               os.path.join(HERE, "nstcpd.py"), spec_path, out_path],
                              capture_output=True, text=True, timeout=900, cwd=HERE)
        if proc.returncode != 0:
            raise RuntimeError(f"nstcpd failed ({proc.returncode}): {proc.stderr[-4000:]}")
        with open(out_path) as f:
            return json.load(f)


WORKDIR = re.compile(r"/(?:[^/\s]+/)*pywrap-e2e-[^/\s]+/s\d+-(?:reference|ours)")


def log_lines(variant: dict) -> list[tuple[int, str, str]]:
    """(priority, ident, text) of tcpd's syslog lines, with the scenario's work directory written as /D."""
    return [(e["pri"], e["ident"], WORKDIR.sub("/D", e["text"])) for e in variant["log"] if e["ident"] != "inetd"]


def report(client: dict) -> dict | None:
    """The probe daemon's JSON report from what a client received, or None if it never ran."""
    text = client.get("received", "")
    start = text.find("{")
    return json.loads(text[start:text.index("}", start) + 1]) if start >= 0 else None


def without_our_extras(lines: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """Our log lines less the ones the reference never writes (README, differences): DNS failure reasons."""
    return [line for line in lines if "DNS lookup failed" not in line[2]]
