"""Test-side helper: run tcpdmatch cases through nsrunner.py in a private mount namespace.

`run_cases(cases)` returns one dict per case with "reference" (Debian's /usr/sbin/tcpdmatch) and "ours"
results. The namespace gets the /etc files below (the /etc/hosts of ../shared/spec/edge-cases.md, DNS pointed at
loopback where nothing answers, netgroups from files), so no case can send traffic off the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

HOSTS = """127.0.0.1 localhost
10.0.0.5 good.example.com good
10.0.0.13 y.example.com x.example.com
10.0.0.12 x.example.com
10.0.0.12 z.example.com
10.0.0.40 nodots
10.0.0.20 multi.example.com
10.0.0.21 multi.example.com
10.0.0.30 Mixed.Example.Com
2001:db8::7 six.example.com
"""

NSSWITCH = """passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
netgroup: files
"""

NETGROUP = "trusted (good.example.com,,) (10.0.0.1,,) (Mixed.Example.Com,,)\nusers (,alice,)\n"

DEFAULT_ETC = {
    "hosts": HOSTS,
    "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    "nsswitch.conf": NSSWITCH,
    "netgroup": NETGROUP,
    "inetd.conf": "",
    "host.conf": "multi on\n",
}


def run_cases(cases: list[dict], *, etc: dict | None = None, reference: bool = True, ours: bool = True,
              timeout: float = 600, case_timeout: float = 20) -> list[dict]:
    spec = {"etc": {**DEFAULT_ETC, **(etc or {})}, "cases": cases, "reference": reference, "ours": ours,
            "timeout": case_timeout}
    with tempfile.TemporaryDirectory(prefix="pywrap-sandbox-") as tmp:
        os.chmod(tmp, 0o755)  # cases run as nobody must reach their files
        spec["workdir"] = tmp  # the runner works in here, so everything goes with it
        spec_path = os.path.join(tmp, "spec.json")
        out_path = os.path.join(tmp, "out.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               os.path.join(HERE, "nsrunner.py"), spec_path, out_path],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"nsrunner failed ({proc.returncode}): {proc.stderr[-4000:]}")
        with open(out_path, encoding="utf-8") as f:
            return json.load(f)


def reference_diagnostics(result: dict) -> list[tuple[str, str]]:
    """The reference's syslog lines as (kind, text) in our stderr vocabulary (see normalise_ours)."""
    found = []
    for entry in result["log"]:
        text = entry["text"]
        if text.startswith("matched:  "):
            table, _, line = text[len("matched:  "):].rpartition(" line ")
            found.append(("matched", f"{table}, line {line}"))
        elif text.startswith("option:   "):
            found.append(("option", text[len("option:   "):]))
        else:
            found.append(("log", text))
    return found


def our_diagnostics(result: dict) -> list[tuple[str, str]]:
    """Our stderr lines mapped to the reference's wording: `FILE, line N: warning: X` is the reference's
    `warning: FILE, line N: X`; `FILE, line N: matched` is `matched:  FILE line N`."""
    found = []
    for raw in result["stderr"].split("\n"):  # not splitlines(): a CR can be part of a token
        if not raw:
            continue
        prefix, kind, text = split_our_line(raw)
        if kind == "matched":
            found.append(("matched", prefix.rstrip(": ")))
        elif kind == "option":
            found.append(("option", text))
        elif kind in ("other", "note"):
            found.append((kind, text))
        else:
            found.append(("log", f"{kind}: {prefix}{text}"))
    return found


def split_our_line(raw: str) -> tuple[str, str, str]:
    """`hosts.allow, line 3: warning: text` -> ("hosts.allow, line 3: ", "warning", "text")."""
    prefix = ""
    rest = raw
    for program in ("tcpdmatch: ", "tcpdchk: "):
        if rest.startswith(program):
            rest = rest[len(program):]
    marker = rest.find(", line ")
    if marker >= 0:
        end = rest.find(": ", marker)
        if end >= 0:
            prefix, rest = rest[:end + 2], rest[end + 2:]
    for kind in ("warning", "error", "option", "matched", "note"):
        if rest == kind:
            return prefix, kind, ""
        if rest.startswith(kind + ": "):
            return prefix, kind, rest[len(kind) + 2:]
    return prefix, "other", rest
