"""The README's examples, run as written (issue 12, items 10 and 13), inside namespaces (tests/nsreadme.py)
over a `make install PREFIX=/usr/local` staged with DESTDIR, so the README's own paths are the real ones:

- the libwrap section's Python block (hello.py) run the ways the README says: its shell command with the
  installed copy, its `sys.path.insert(...)`, and a `pip install` of the checkout into a virtual
  environment; it must serve a loopback client the rules grant and close on one they refuse;
- the easy-install section's dpkg-divert commands and their undo, around upgrades of a fake package that
  owns /usr/sbin/in.fingerd (dpkg's database and /usr are copy-on-write overlays in the namespace: the
  machine's are never written).
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

import pytest
from sandbox import DEFAULT_ETC

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REAL_DAEMON_DIR = "/usr/lib/pywrap/real"  # the easy way's example value in the README
GRANTED = (30, "hello", "connect from 127.0.0.1 (127.0.0.1)")
REFUSED = (28, "hello", "refused connect from 127.0.0.2 (127.0.0.2)")


def readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", readme(), re.M | re.S)


def block_with(language: str, *words: str) -> str:
    found = [b for b in blocks(language) if all(w in b for w in words)]
    assert len(found) == 1, f"the README should have one ```{language} block with {words}, not {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def stage() -> str:
    """`make install` with the README's PREFIX and the easy way's REAL_DAEMON_DIR, staged under DESTDIR."""
    base = tempfile.mkdtemp(prefix="pywrap-readme-stage-")
    atexit.register(shutil.rmtree, base, True)
    os.chmod(base, 0o755)
    proc = subprocess.run(["make", "-C", ROOT, "install", f"DESTDIR={base}", "PREFIX=/usr/local",
                           f"REAL_DAEMON_DIR={REAL_DAEMON_DIR}", "CACHE_DIR="], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return base


def run_in_namespace(spec: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="pywrap-readme-") as tmp:
        os.chmod(tmp, 0o755)
        spec = {**spec, "workdir": tmp}
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        proc = subprocess.run(["unshare", "-m", "-n", "--propagation", "private", sys.executable,
                               os.path.join(HERE, "nsreadme.py"), spec_path, out_path],
                              capture_output=True, text=True, timeout=900, cwd=HERE)
        assert proc.returncode == 0, proc.stderr[-4000:]
        with open(out_path) as f:
            return json.load(f)


# item 10: the libwrap example --------------------------------------------------------------------------

def hello_ways(venv: str) -> dict[str, dict[str, str]]:
    (hello,) = blocks("python")  # every Python block of the README is run here; a new one needs a way
    assert hello.startswith("# hello.py\n")
    command = block_with("sh", "hello.py").strip()
    insert = re.search(r'`(sys\.path\.insert\(0, "[^"]+"\))`', readme())
    assert insert, "the README should show the sys.path.insert(...) line for the installed copy"
    return {"shell command": {"command": command, "hello": hello},
            "sys.path.insert": {"command": "python3 hello.py", "hello": f"import sys\n{insert[1]}\n{hello}"},
            "pip install": {"command": f"{venv}/bin/python hello.py", "hello": hello}}


@pytest.fixture(scope="module")
def servers(stage) -> dict:
    with tempfile.TemporaryDirectory(prefix="pywrap-readme-venv-") as venv:
        os.chmod(venv, 0o755)
        # the README's other way: a venv of one's own, and pip install of the checkout
        subprocess.run(["/usr/bin/python3", "-m", "venv", venv], check=True, timeout=300)
        pip = subprocess.run([f"{venv}/bin/pip", "install", "-q", ROOT], capture_output=True, text=True,
                             timeout=600)
        assert pip.returncode == 0, pip.stderr[-2000:]
        etc = {**DEFAULT_ETC, "hosts.allow": "hello: 127.0.0.1\n", "hosts.deny": "ALL: ALL\n"}
        return run_in_namespace({"mode": "servers", "stage": stage, "etc": etc, "ways": hello_ways(venv)})


@pytest.mark.parametrize("way", ["shell command", "sys.path.insert", "pip install"])
def test_socketserver_example_serves_as_the_readme_says(servers, way):
    result = servers[way]
    assert "Traceback" not in result["stderr"], result["stderr"]
    assert [c["received"] for c in result["clients"]] == ["hello\n", ""]
    assert [(e["pri"], e["ident"], e["text"]) for e in result["log"]] == [GRANTED, REFUSED]


def test_readme_says_how_to_get_the_library():
    section = readme().split("## For Python servers: libwrap", 1)[1].split("\n## ", 1)[0]
    assert "PYTHONPATH=/usr/local/lib/pywrap python3 hello.py" in section
    assert "pip install" in section


# item 13: the easy way and dpkg-divert -------------------------------------------------------------------

@pytest.fixture(scope="module")
def divert(stage) -> dict:
    etc = {**DEFAULT_ETC, "hosts.allow": "in.fingerd: ALL\n", "hosts.deny": "ALL: ALL\n"}
    spec = {"mode": "divert", "stage": stage, "etc": etc, "real_daemon_dir": REAL_DAEMON_DIR,
            "divert": block_with("sh", "dpkg-divert", "--add"),
            "undo": block_with("sh", "dpkg-divert", "--remove")}
    return run_in_namespace(spec)


def wrapped(step: dict, version: int) -> bool:
    """The service answers with the package's daemon of that version, through tcpd (its log line)."""
    service = step["service"]
    lines = [(e["pri"], e["ident"], e["text"]) for e in service["log"]]
    return (service["received"] == f"fingerd v{version}\n"
            and lines == [(30, "in.fingerd", "connect from localhost (localhost)")])


def test_plain_copy_is_lost_on_upgrade(divert):
    """What the README warns about: the package's upgrade writes its daemon over the copy of tcpd."""
    assert divert["installed v1"]["status"] == 0 and divert["installed v1"]["daemon"] == "#!/bin/sh\necho fingerd v1\n"
    assert divert["plain copy of tcpd"]["daemon_is_tcpd"] and wrapped(divert["plain copy of tcpd"], 1)
    upgraded = divert["plain copy, upgraded to v2"]
    assert upgraded["status"] == 0 and not upgraded["daemon_is_tcpd"]
    assert upgraded["service"] == {"received": "fingerd v2\n", "log": []}  # unwrapped, silently


def test_dpkg_divert_keeps_tcpd_in_place_across_upgrades(divert):
    diverted = divert["README's dpkg-divert"]
    assert diverted["status"] == 0, diverted["output"]
    assert diverted["diverted"] and diverted["daemon_is_tcpd"]
    assert diverted["real"] == "#!/bin/sh\necho fingerd v2\n" and wrapped(diverted, 2)
    upgraded = divert["diverted, upgraded to v3"]
    assert upgraded["status"] == 0, upgraded["output"]
    assert upgraded["daemon_is_tcpd"] and upgraded["real"] == "#!/bin/sh\necho fingerd v3\n"
    assert wrapped(upgraded, 3)


def test_undo_puts_the_packages_daemon_back(divert):
    undone = divert["README's undo"]
    assert undone["status"] == 0, undone["output"]
    assert not undone["diverted"] and undone["real"] is None
    assert undone["daemon"] == "#!/bin/sh\necho fingerd v3\n"
    assert undone["service"] == {"received": "fingerd v3\n", "log": []}


def test_easy_way_names_the_directory_the_commands_use():
    easy = readme().split("The easy way:", 1)[1].split("\nUnder tcpserver", 1)[0]
    assert f"REAL_DAEMON_DIR={REAL_DAEMON_DIR}" in easy
    assert f"--divert {REAL_DAEMON_DIR}/in.fingerd --add /usr/sbin/in.fingerd" in easy
