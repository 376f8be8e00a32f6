"""Test-side helper: run cases through nsbounded.py in a private mount namespace (see its docstring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from sandbox import DEFAULT_ETC

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cases: list[dict], prefix: str | None = None, stuck_log: bool = False) -> list[dict]:
    """One result per case: rc ("timeout" past the case's limit), stdout and stderr or what the client
    received, the syslog lines (none with `stuck_log`), and the case's directory."""
    spec = {"etc": DEFAULT_ETC, "cases": cases, "prefix": prefix, "stuck_log": stuck_log}
    with tempfile.TemporaryDirectory(prefix="pywrap-bounded-") as tmp:
        os.chmod(tmp, 0o755)
        spec["workdir"] = tmp  # the runner works in here, so everything goes with it
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               os.path.join(HERE, "nsbounded.py"), spec_path, out_path],
                              capture_output=True, text=True, timeout=900, cwd=HERE)
        assert proc.returncode == 0, proc.stderr[-4000:]
        with open(out_path) as f:
            return json.load(f)
