"""`make install`: a self-contained copy under PREFIX with the build settings baked in, whose programs work with
an empty environment, from any directory, as user nobody, and agree with Debian's tcpdmatch.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERIES = ["10.0.0.1", "10.0.0.2", "192.0.2.7", "::1", "2001:db8::5"]
ALLOW = "sshd: 10.0.0.1 [::1]\n"
DENY = "sshd: ALL EXCEPT 192.0.2.0/24\n"


def make(*args: str) -> None:
    proc = subprocess.run(["make", "-C", ROOT, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def prefix():
    base = tempfile.mkdtemp(prefix="pywrap-install-")
    atexit.register(shutil.rmtree, base, True)
    os.chmod(base, 0o755)  # nobody must reach the installed files
    etc = os.path.join(base, "etc")
    os.mkdir(etc)
    for name, text in (("hosts.allow", ALLOW), ("hosts.deny", DENY)):
        with open(os.path.join(etc, name), "w") as f:
            f.write(text)
    make("install", f"PREFIX={base}", f"HOSTS_ALLOW={etc}/hosts.allow", f"HOSTS_DENY={etc}/hosts.deny",
         f"CACHE_DIR={base}/cache")
    return base


def test_layout_and_baked_settings(prefix):
    program = os.path.join(prefix, "sbin", "tcpdmatch")
    assert os.access(program, os.X_OK)
    with open(program) as f:
        first = f.readline()
    assert first == "#!/usr/bin/python3 -IS\n"
    with open(os.path.join(prefix, "lib", "pywrap", "pywrap", "_build.py")) as f:
        baked = f.read()
    assert f"HOSTS_ALLOW = '{prefix}/etc/hosts.allow'" in baked
    assert "REAL_DAEMON_DIR = '/usr/sbin'" in baked
    for sub in ("pyparsing", "dns", "pywrap"):
        assert os.path.isdir(os.path.join(prefix, "lib", "pywrap", sub))
    assert os.path.isfile(os.path.join(prefix, "share", "man", "man8", "tcpdmatch.8"))
    for page in ("tcpd.8", "tcpdchk.8", "hosts_access.5", "hosts_options.5"):
        section = "man" + page[-1]
        assert os.path.isfile(os.path.join(prefix, "share", "man", section, page))


@pytest.mark.parametrize("client", QUERIES)
def test_installed_tcpdmatch_as_nobody_agrees_with_debian(prefix, client):
    ours = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env", "-i",
                           os.path.join(prefix, "sbin", "tcpdmatch"), "sshd", client],
                          capture_output=True, text=True, cwd="/", timeout=60)
    with tempfile.TemporaryDirectory() as work:
        for name, text in (("hosts.allow", ALLOW), ("hosts.deny", DENY)):
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
        ref = subprocess.run(["/usr/sbin/tcpdmatch", "-d", "sshd", client], capture_output=True, text=True,
                             cwd=work, timeout=60)
    assert ours.returncode == ref.returncode == 0, ours.stderr
    assert ours.stdout == ref.stdout
    assert "Traceback" not in ours.stderr
    if client != "192.0.2.7":  # the one no rule matches
        assert f"{prefix}/etc/hosts." in ours.stderr  # the baked tables were the ones read


def test_destdir_stages_without_touching_prefix():
    stage = tempfile.mkdtemp(prefix="pywrap-destdir-")
    atexit.register(shutil.rmtree, stage, True)
    make("install", f"DESTDIR={stage}", "PREFIX=/opt/pywrap-test", "CACHE_DIR=/opt/pywrap-test/cache")
    assert not os.path.exists("/opt/pywrap-test")
    program = os.path.join(stage, "opt/pywrap-test/sbin/tcpdmatch")
    with open(program) as f:
        assert "sys.path.insert(0, '/opt/pywrap-test/lib/pywrap')" in f.read()
    assert os.path.isfile(os.path.join(stage, "opt/pywrap-test/lib/pywrap/pywrap/cli/tcpdmatch.py"))
