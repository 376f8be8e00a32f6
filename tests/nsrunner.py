"""Run tcpdmatch (or tcpdchk) cases against Debian's binary and ours inside a private mount namespace.

Started as `unshare -m PYTHON tests/nsrunner.py SPEC.json OUT.json` (see sandbox.py). Inside the namespace it
replaces /etc with a private copy (so /etc/hosts, resolv.conf, nsswitch.conf, netgroup and inetd.conf are the
test's own), puts a private tmpfs on /dev with a syslog listener on /dev/log, and points DNS at loopback, so
nothing a case does can reach the network. For each case it writes the table files into a fresh directory
("/D/" in any file text or argument becomes that directory), runs `/usr/sbin/tcpdmatch -d ARGS` there (or
the case's "program", with "raw_args" for its own arguments) and collects stdout, exit status and the syslog
lines; then runs ours in-process the same way (or "ours_program": hosts_ctl, the library call), or as a
child process when the case names a "user" to run as.

SPEC: {"etc": {"hosts": "...", ...}, "ours": true, "reference": true,
       "cases": [{"files": {"hosts.allow": "..."}, "args": ["sshd", "10.0.0.1"], "modes": {"x": 0}}]}
File texts are latin-1 strings (bytes 0-255); a value of null makes a symlink that points at itself.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCES = {"tcpdmatch": "/usr/sbin/tcpdmatch", "tcpdchk": "/usr/sbin/tcpdchk"}
SYSLOG_RE = re.compile(rb"^<(\d+)>(?:\w{3} [ \d]\d \d\d:\d\d:\d\d )?([^:\[]+)(?:\[\d+\])?: ?(.*)$", re.S)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def reachable_by_everyone(path: str) -> None:
    """Let every user reach `path` in this mount namespace, however the directories above it are set.

    Checkouts live where root clones them, under /root (mode 0700) or a mktemp -d directory; programs and
    daemons the tests run as nobody must still reach the checkout and the installed files in it. The first
    ancestor that others cannot enter is covered with a tmpfs (mode 0755) that holds the same path down to
    `path`, and `path` itself is bind-mounted back in place, so every absolute path below it still works. The
    real directories are never changed; the cover lasts as long as the namespace.
    """
    path = os.path.realpath(path)
    parts = path.strip("/").split("/")
    ancestors = ["/" + "/".join(parts[:n]) for n in range(1, len(parts))]
    closed = next((a for a in ancestors if not os.stat(a).st_mode & 0o001), None)
    if closed is None:
        return
    held = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", closed)
        os.makedirs(path, mode=0o755)
        subprocess.run(["mount", "--no-canonicalize", "--bind", f"/proc/self/fd/{held}", path], check=True, pass_fds=[held])
    finally:
        os.close(held)


def private_etc(root: str, files: dict[str, str]) -> None:
    copy = os.path.join(root, "etc")
    shutil.copytree("/etc", copy, symlinks=True)
    for name, text in files.items():
        path = os.path.join(copy, name)
        if os.path.islink(path) or os.path.exists(path):
            os.unlink(path)
        with open(path, "wb") as f:
            f.write(text.encode("latin-1"))
    _mount("--bind", copy, "/etc")


def private_dev(root: str) -> socket.socket:
    old = os.path.join(root, "olddev")
    os.mkdir(old)
    _mount("--bind", "/dev", old)
    _mount("-t", "tmpfs", "tmpfs", "/dev")
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        open(os.path.join("/dev", node), "w").close()
        _mount("--bind", os.path.join(old, node), os.path.join("/dev", node))
    os.symlink("/proc/self/fd", "/dev/fd")
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind("/dev/log")
    os.chmod("/dev/log", 0o666)
    return log


class SyslogCollector:
    """Reads /dev/log on a thread, so a program that logs a lot never blocks on a full socket queue
    (a Unix datagram socket holds only a few messages), and hands out what arrived up to now."""

    SENTINEL = b"<0>nsrunner: -- end of case --"

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.queue: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            self.queue.put(self.sock.recv(65536))

    def collect_now(self) -> list[dict]:
        """What has arrived so far, without waiting."""
        lines = []
        while True:
            try:
                data = self.queue.get_nowait()
            except queue.Empty:
                return lines
            if data != self.SENTINEL:
                lines.append(parse_syslog(data))

    def collect(self) -> list[dict]:
        """Everything logged since the last call (a sentinel marks the end: datagrams keep their order)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(self.SENTINEL, "/dev/log")
        lines = []
        while (data := self.queue.get(timeout=30)) != self.SENTINEL:
            lines.append(parse_syslog(data))
        return lines


def parse_syslog(data: bytes) -> dict:
    m = SYSLOG_RE.match(data)
    if m is None:
        return {"pri": -1, "ident": "", "text": data.decode("latin-1")}
    return {"pri": int(m.group(1)), "ident": m.group(2).decode("latin-1"),
            "text": m.group(3).decode("latin-1").rstrip("\n")}


def write_case_files(directory: str, files: dict[str, str | None], modes: dict[str, int]) -> None:
    for name, text in files.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if text is None:
            os.symlink(path, path)
            continue
        if text.startswith("\0DIR"):
            os.mkdir(path)
            continue
        with open(path, "wb") as f:
            f.write(text.replace("/D/", directory + "/").encode("latin-1"))
    for name, mode in modes.items():
        os.chmod(os.path.join(directory, name), mode)


def run_program(command: list[str], directory: str, args: list[str], timeout: float,
                user: str | None = None) -> tuple:
    try:
        proc = subprocess.run([c.encode() for c in command] + [a.encode("latin-1") for a in args],
                              cwd=directory, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              user=user)
        return proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or b"", e.stderr or b""


def run_reference(directory: str, args: list[str], log: SyslogCollector, timeout: float,
                  user: str | None = None, program: str = "tcpdmatch") -> dict:
    rc, out, err = run_program([REFERENCES[program]], directory, args, timeout, user)
    return {"rc": rc, "stdout": out.decode("latin-1"), "stderr": err.decode("latin-1"), "log": log.collect()}


def run_ours_as(directory: str, args: list[str], timeout: float, user: str, program: str = "tcpdmatch") -> dict:
    """Ours in a child process running as `user` (cases about permissions)."""
    command = [sys.executable, "-c", OURS_AS_PROGRAM.replace("tcpdmatch", program)]
    rc, out, err = run_program(command, directory, args, timeout, user)
    return {"rc": rc, "stdout": out.decode("latin-1"), "stderr": err.decode("latin-1")}


OURS_AS_PROGRAM = "import sys; from pywrap.cli.tcpdmatch import main; sys.argv[0] = 'tcpdmatch'; sys.exit(main())"


def run_hosts_ctl(directory: str, args: list[str]) -> dict:
    """The library's hosts_ctl() for a tcpdmatch-style query: `-d daemon [user@]address`."""
    from pywrap.libwrap import hosts_ctl

    daemon, client = args[-2], args[-1]
    user, _, address = client.rpartition("@")
    tables = (os.path.join(directory, "hosts.allow"), os.path.join(directory, "hosts.deny"))
    granted = hosts_ctl(daemon, None, address, user or None, tables=tables)
    return {"rc": 0, "stdout": f"access:   {'granted' if granted else 'denied'}\n", "stderr": ""}


def run_ours(directory: str, args: list[str], program: str = "tcpdmatch") -> dict:
    import importlib

    if program == "hosts_ctl":
        return run_hosts_ctl(directory, args)
    tool = importlib.import_module(f"pywrap.cli.{program}")
    out, err = io.BytesIO(), io.BytesIO()
    here = os.getcwd()
    os.chdir(directory)
    try:
        rc = tool.run([program, *args], out, err)
    except BaseException as e:  # a crash is a result to report, not a reason to stop the run
        rc = f"exception {type(e).__name__}: {e}"
    finally:
        os.chdir(here)
    return {"rc": rc, "stdout": out.getvalue().decode("latin-1"), "stderr": err.getvalue().decode("latin-1")}


def main(spec_path: str, out_path: str) -> int:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    reachable_by_everyone(CHECKOUT)  # cases run as nobody
    root = tempfile.mkdtemp(prefix="pywrap-ns-", dir=spec.get("workdir"))  # removed by the caller
    private_etc(root, spec.get("etc", {}))
    log = SyslogCollector(private_dev(root))
    results = []
    for n, case in enumerate(spec["cases"]):
        directory = os.path.join(root, f"case{n}")
        os.mkdir(directory)
        write_case_files(directory, case.get("files", {}), case.get("modes", {}))
        args = [a.replace("/D/", directory + "/") for a in case["args"]]
        if not case.get("raw_args"):
            args = ["-d", *args]
        result: dict = {"dir": directory}
        user = case.get("user")
        program = case.get("program", "tcpdmatch")
        if user:
            os.chmod(root, 0o755)
            os.chmod(directory, 0o755)
        timeout = spec.get("timeout", 20)
        if spec.get("reference", True):
            result["reference"] = run_reference(directory, args, log, timeout, user, program)
        if spec.get("ours", True):
            log.collect()  # ours logs nothing to syslog; keep the next case's log clean all the same
            ours_program = case.get("ours_program", program)
            result["ours"] = (run_ours_as(directory, args, timeout, user, ours_program) if user
                              else run_ours(directory, args, ours_program))
        results.append(result)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
