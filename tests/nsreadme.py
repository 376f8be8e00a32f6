"""Run the README's examples as written, inside private mount and network namespaces.

Started as `unshare -m -n --propagation private PYTHON tests/nsreadme.py SPEC.json OUT.json` (see
test_readme_examples.py). SPEC holds the README's blocks, a `make install DESTDIR=STAGE PREFIX=/usr/local`
staging directory and a scratch directory. Inside: a private /etc and /dev/log (collected), loopback
only, and copy-on-write overlays with tmpfs upper layers over /usr (STAGE's /usr/local on top, so the
installed copy is at the README's /usr/local paths) and /var (dpkg's database): whatever the examples
write (make directories, divert, install packages) is gone with the namespace. The overlays are
checked to be in place before anything runs.

- "servers": each way of running hello.py (a shell command and the file's text) serves one client from
  127.0.0.1 and one from 127.0.0.2; what each received, the server's stderr and the syslog lines.
- "divert": a fake package owning /usr/sbin/in.fingerd is installed, wrapped by a plain copy and
  upgraded, then wrapped with the README's dpkg-divert commands, upgraded again and unwrapped with the
  README's undo commands; after each step, what the files hold and what the wrapped service answers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from nsrunner import SyslogCollector, private_dev, private_etc
from nssystemd import WAIT, bound, tcp_client

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PACKAGE = "pywrap-readme-test-fingerd"
DAEMON = "/usr/sbin/in.fingerd"


def overlay(target: str, lowers: list[str], scratch: str) -> None:
    """A writable copy-on-write view of `target` whose writes land in scratch (a tmpfs)."""
    before = os.stat(target).st_dev
    upper, work = os.path.join(scratch, "upper" + target), os.path.join(scratch, "work" + target)
    os.makedirs(upper)
    os.makedirs(work)
    options = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, target], check=True)
    if os.stat(target).st_dev == before:  # never let an example write to the machine's own files
        raise SystemExit(f"overlay on {target} is not in place")


def private_tree(root: str, stage: str) -> None:
    scratch = os.path.join(root, "overlays")
    os.mkdir(scratch)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", scratch], check=True)
    overlay("/usr", [os.path.join(stage, "usr"), "/usr"], scratch)
    overlay("/var", ["/var"], scratch)


def serve_once(command: str, hello: str, work: str, log: SyslogCollector) -> dict:
    """Run `command` in a directory holding hello.py; connect once granted, once refused; stop it."""
    os.makedirs(work)
    with open(os.path.join(work, "hello.py"), "w") as f:
        f.write(hello)
    err_path = os.path.join(work, "stderr")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(["sh", "-c", command], cwd=work, stdin=subprocess.DEVNULL, stdout=err,
                                stderr=err, env={"PATH": PATH, "HOME": work}, start_new_session=True)
    deadline = time.monotonic() + WAIT
    while not bound(7000, False) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    clients = [tcp_client(7000, source) for source in ("127.0.0.1", "127.0.0.2")] if bound(7000, False) else []
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the session started above: sh and the server
    proc.wait(timeout=WAIT)
    with open(err_path, encoding="latin-1") as f:
        stderr = f.read()
    return {"clients": clients, "stderr": stderr, "log": log.collect()}


def run_servers(spec: dict, root: str, log: SyslogCollector) -> dict:
    return {name: serve_once(way["command"], way["hello"], os.path.join(root, f"way{n}"), log)
            for n, (name, way) in enumerate(spec["ways"].items())}


def build_package(root: str, version: int) -> str:
    tree = os.path.join(root, f"pkg{version}")
    os.makedirs(os.path.join(tree, "DEBIAN"))
    os.makedirs(os.path.join(tree, "usr", "sbin"))
    with open(os.path.join(tree, "DEBIAN", "control"), "w") as f:
        f.write(f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nMaintainer: pywrap tests <t@x>\n"
                f"Description: a fake in.fingerd for the README's dpkg-divert test\n")
    daemon = os.path.join(tree, DAEMON.lstrip("/"))
    with open(daemon, "w") as f:
        f.write(f"#!/bin/sh\necho fingerd v{version}\n")
    os.chmod(daemon, 0o755)
    deb = tree + ".deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, deb], check=True, capture_output=True)
    return deb


def sh(text: str) -> dict:
    proc = subprocess.run(["sh", "-e", "-c", text], capture_output=True, text=True, env={"PATH": PATH},
                          timeout=WAIT)
    return {"status": proc.returncode, "output": proc.stdout + proc.stderr}


def read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except OSError:
        return None


def answer(log: SyslogCollector) -> dict:
    """What the service at DAEMON answers a client, started as inetd would (argv[0] `in.fingerd`)."""
    mine, theirs = socket.socketpair()
    with mine:
        proc = subprocess.Popen(["in.fingerd"], executable=DAEMON, stdin=theirs, stdout=theirs,
                                stderr=subprocess.DEVNULL, env={})
        theirs.close()
        mine.settimeout(WAIT)
        received = b""
        while chunk := mine.recv(65536):
            received += chunk
    proc.wait(timeout=WAIT)
    return {"received": received.decode("latin-1"), "log": log.collect()}


def state(real_dir: str, tcpd: bytes, log: SyslogCollector, step: dict) -> dict:
    daemon = read(DAEMON)
    diversions = sh("dpkg-divert --list")["output"]
    return {**step, "daemon_is_tcpd": daemon is not None and daemon.encode("latin-1") == tcpd,
            "daemon": daemon, "real": read(os.path.join(real_dir, "in.fingerd")),
            "diverted": DAEMON in diversions, "service": answer(log)}


def run_divert(spec: dict, root: str, log: SyslogCollector) -> dict:
    with open("/usr/local/sbin/tcpd", "rb") as f:
        tcpd = f.read()
    debs = [build_package(root, version) for version in (1, 2, 3)]
    real = spec["real_daemon_dir"]
    steps = {"installed v1": f"dpkg -i {debs[0]}",
             "plain copy of tcpd": f"mkdir -p {real} && mv {DAEMON} {real}/ && cp /usr/local/sbin/tcpd {DAEMON}",
             "plain copy, upgraded to v2": f"dpkg -i {debs[1]}",
             "README's dpkg-divert": f"rm -r {real}\n{spec['divert']}",  # the stale v1 out of the way first
             "diverted, upgraded to v3": f"dpkg -i {debs[2]}",
             "README's undo": spec["undo"]}
    return {name: state(real, tcpd, log, sh(text)) for name, text in steps.items()}


def main(spec_path: str, out_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    root = tempfile.mkdtemp(prefix="pywrap-readme-", dir=spec["workdir"])  # removed by the caller
    os.chmod(root, 0o755)
    private_etc(root, spec["etc"])
    log = SyslogCollector(private_dev(root))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    private_tree(root, spec["stage"])
    result = run_servers(spec, root, log) if spec["mode"] == "servers" else run_divert(spec, root, log)
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
