"""The Makefile as a newcomer meets it, in a copy of the checkout under a directory only root can enter (as
/root is): `make help`; `make install` writing nothing outside the checkout and DESTDIR and needing none of the
development tools; `make uninstall` removing exactly what install wrote; `make demo` showing a granted and a
refused client from there, leaving nothing in the temporary directory, and failing loudly when tcpd does not
do its job.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a careless Makefile would write to: the system interpreter (a venv's bin/python is a link to it),
# /etc, /var, root's home (pip's cache), and the checkout the tests run from.
READ_ONLY = ["/usr", "/etc", "/var", "/opt", "/root", "/home", ROOT]


def checkout_files() -> list[str]:
    listed = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    return [f for f in listed.decode().split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]


@pytest.fixture(scope="module")
def clone():
    """The working tree (tracked and new files) copied under a 0700 directory, with Debian's unpacked parts."""
    closed = tempfile.mkdtemp(prefix="pywrap-closed-")  # mode 0700, as root's home
    copy = os.path.join(closed, "pywrap")
    for name in checkout_files():
        os.makedirs(os.path.dirname(os.path.join(copy, name)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), os.path.join(copy, name))
    shutil.copytree(os.path.join(ROOT, "build", "debian"), os.path.join(copy, "build", "debian"), symlinks=True)
    yield copy
    shutil.rmtree(closed, ignore_errors=True)


def run_make(directory: str, *args: str, read_only: bool = False, env: dict | None = None):
    command = ["make", "--no-print-directory", "-C", directory, *args]
    if read_only:  # a private mount namespace where everything a Makefile must not touch is read-only
        binds = "".join(f"mount --bind {p} {p} && mount -o remount,bind,ro {p} && " for p in READ_ONLY)
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", binds + 'exec "$@"', "sh", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def test_help_lists_every_target_and_setting():
    proc = run_make(ROOT, "-s", "help")
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    for target in ("test", "demo", "install", "uninstall", "bench", "lint", "clean", "help"):
        assert re.search(rf"^  make {target} +\S", proc.stdout, re.M), target
    settings = re.findall(r"^([A-Z0-9_]+) +\?= *(.*)$", makefile, re.M)
    assert len(settings) >= 12
    for name, default in settings:
        assert re.search(rf"^  {name} +{re.escape(default or '(empty)')} +\S", proc.stdout, re.M), name


def test_install_writes_only_into_the_checkout_and_destdir_and_uninstall_removes_it(clone):
    stage = tempfile.mkdtemp(prefix="pywrap-stage-")
    try:
        sbin = os.path.join(stage, "usr", "local", "sbin")
        os.makedirs(sbin)
        with open(os.path.join(sbin, "someone-elses"), "w") as f:
            f.write("not pywrap's\n")
        proc = run_make(clone, "install", f"DESTDIR={stage}", "PREFIX=/usr/local", read_only=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert os.access(os.path.join(sbin, "tcpd"), os.X_OK)
        dynamic = subprocess.run(["readelf", "-h", "-d", os.path.join(sbin, "tcpd")], capture_output=True,
                                 text=True, check=True).stdout
        assert "DYN (Position-Independent Executable file)" in dynamic and "BIND_NOW" in dynamic  # hardened
        library = os.path.join(stage, "usr", "local", "lib", "pywrap")
        assert sorted(os.listdir(library)) == sorted(n for n in os.listdir(library) if not re.match(
            r"(pytest|_pytest|hypothesis|ruff|pluggy|iniconfig)", n))
        assert {"pywrap", "pyparsing", "dns"} <= set(os.listdir(library))
        assert not os.path.exists(os.path.join(clone, ".venv")), "install built the development venv"
        cache = os.path.join(stage, "var", "cache", "pywrap")
        assert oct(os.stat(os.path.join(cache, "users")).st_mode & 0o7777) == "0o1733"
        os.mkdir(os.path.join(cache, "users", "65534"))  # what tcpd writes there at run time
        with open(os.path.join(cache, "users", "65534", "%2Fetc%2Fhosts.deny.tables"), "w") as f:
            f.write("cache")
        with open(os.path.join(cache, "%2Fetc%2Fhosts.deny.tables"), "w") as f:
            f.write("cache")

        proc = run_make(clone, "uninstall", f"DESTDIR={stage}", "PREFIX=/usr/local", read_only=True)
        assert proc.returncode == 0, proc.stderr
        left = [os.path.relpath(os.path.join(d, f), stage) for d, _, files in os.walk(stage) for f in files]
        assert left == ["usr/local/sbin/someone-elses"]
        assert not os.path.exists(os.path.join(stage, "var", "cache", "pywrap"))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def test_demo_from_a_closed_directory_shows_a_grant_and_a_refusal(clone):
    scratch = tempfile.mkdtemp(prefix="pywrap-tmpdir-")
    try:
        proc = run_make(clone, "demo", env=dict(os.environ, TMPDIR=scratch))
        assert os.listdir(scratch) == [], "the demo left files in its temporary directory"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "client 127.0.0.1 received: hello 127.0.0.1, the demo daemon answers (running as uid 65534)" in proc.stdout
    assert "client 127.0.0.2 received: (nothing: refused)" in proc.stdout
    assert "demo-hello: connect from 127.0.0.1 (127.0.0.1)" in proc.stdout
    assert "demo-hello: refused connect from 127.0.0.2 (127.0.0.2)" in proc.stdout
    assert not os.path.exists(os.path.join(clone, "demo-prefix", "demo-run"))


def test_demo_fails_loudly_when_tcpd_cannot_run(clone):
    prefix = os.path.join(clone, "demo-prefix")
    if not os.path.exists(os.path.join(prefix, "sbin", "tcpd")):
        assert run_make(clone, "demo").returncode == 0
    tcpd = os.path.join(prefix, "sbin", "tcpd")
    os.chmod(tcpd, 0o700)  # inetd runs the service as nobody: its execv now fails
    try:
        proc = subprocess.run(["/usr/bin/python3", os.path.join(clone, "tools", "demo.py"), prefix],
                              capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(tcpd, 0o755)
    assert proc.returncode == 1
    assert "DEMO FAILED" in proc.stderr
    assert "client 127.0.0.1 should have been granted" in proc.stderr
    assert re.search(r"execv? .*tcpd: Permission denied", proc.stderr), proc.stderr


def load_debian_parts():
    spec = importlib.util.spec_from_file_location("debian_parts", os.path.join(ROOT, "tools", "debian_parts.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def xinetd_machine():
    """apt options for a dry run on this machine as if Debian's xinetd (an inet-superserver) were installed."""
    parts = load_debian_parts()
    with open("/var/lib/dpkg/status") as f:
        status = f.read()
    if "\nPackage: xinetd\n" not in "\n" + status:
        stanza = subprocess.run(["apt-cache", "show", "--no-all-versions", "xinetd"], capture_output=True,
                                text=True, check=True).stdout.strip()
        status = status.rstrip("\n") + "\n\n" + stanza.replace("\nVersion:", "\nStatus: install ok installed\nVersion:", 1) + "\n"
    with tempfile.NamedTemporaryFile("w", suffix=".status", delete=False) as f:
        f.write(status)
    yield parts, ("-o", f"Dir::State::status={f.name}")
    os.unlink(f.name)


def test_what_make_test_installs_removes_nothing_on_an_xinetd_machine(xinetd_machine):
    parts, apt_options = xinetd_machine
    packages = parts.needed(os.path.join(ROOT, "build"), "test")
    assert "openbsd-inetd" not in packages
    # All of them at once, installed already or not: apt would upgrade some that are, but remove nothing.
    assert [line for line in parts.harm(packages, apt_options) if not line.startswith("Inst ")] == []


def test_a_plan_that_would_remove_a_package_is_refused(xinetd_machine):
    parts, apt_options = xinetd_machine
    harmful = parts.harm(["openbsd-inetd"], apt_options)  # what the old Makefile installed
    assert any(line.startswith("Remv xinetd") for line in harmful), harmful
