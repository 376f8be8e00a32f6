"""Run tcpdmatch, tcpdchk and tcpd on tables that are not plain files, inside a private mount namespace.

Started as `unshare -m PYTHON tests/nsbounded.py SPEC.json OUT.json` (see test_bounded_reads.py). Inside: a
private /etc (the sandbox's hosts, resolv.conf at loopback) and a private /dev with /dev/log. With
"stuck_log" that /dev/log is bound but never read, and its queue is filled before the first case, so every
line a program sends to it waits; otherwise its lines are collected for each case.

A case names its files: "hosts.allow", "hosts.deny" and any /file list, each either a latin-1 text or
{"fifo": true}, {"link": "/dev/zero"} (a symbolic link), or {"sparse": SIZE, "text": HEAD} (HEAD, then a
hole up to SIZE bytes). "/D/" in texts and arguments is the case's directory. "run" is "tcpdmatch" or
"tcpdchk" (ours, `-d` in the case's directory), "reference" (Debian's tcpdmatch the same way), or "tcpd":
the tables go to /etc (the installed tcpd's HOSTS_ALLOW and HOSTS_DENY), and the installed tcpd at PREFIX
(or the case's "tcpd": Debian's /usr/sbin/tcpd) is started with an accepted loopback TCP connection as fds
0-2 and argv ARGS (ARGS[0] an absolute daemon path); the result holds what the client received. Every
program runs with a time limit ("timeout": its rc is then "timeout") and an address-space limit, so an
unbounded read ends the case, not the machine.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile

from nsrunner import CHECKOUT, REFERENCES, SyslogCollector, private_dev, private_etc

MEMORY_LIMIT = 3 << 30  # bytes of address space for each program: a runaway read fails, the machine stays
OURS = ("import sys; from pywrap.cli.{0} import main; sys.argv[0] = '{0}'; sys.exit(main())")


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def make_file(path: str, spec, directory: str) -> None:
    if os.path.lexists(path):
        os.unlink(path)
    if spec is None:
        return
    if isinstance(spec, str):
        with open(path, "wb") as f:
            f.write(spec.replace("/D/", directory + "/").encode("latin-1"))
    elif spec.get("fifo"):
        os.mkfifo(path)
    elif "link" in spec:
        os.symlink(spec["link"], path)
    else:
        with open(path, "wb") as f:
            f.write(spec.get("text", "").replace("/D/", directory + "/").encode("latin-1"))
            f.truncate(spec["sparse"])


def fill_queue(path: str) -> list[socket.socket]:
    """Send to `path` until its receive queue is full (a sender's own buffer can fill first: then another
    sender), and return the senders: they stay open, so what they sent stays queued."""
    senders = []
    while True:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        senders.append(sender)
        sent = 0
        try:
            while True:
                sender.sendto(b"<0>filler: x", path)
                sent += 1
        except BlockingIOError:
            if sent == 0:
                return senders


def run_tool(case: dict, directory: str) -> dict:
    if case["run"] == "reference":
        command = [REFERENCES["tcpdmatch"]]
    else:
        command = [sys.executable, "-c", OURS.format(case["run"])]
    args = ["-d", *(a.replace("/D/", directory + "/") for a in case["args"])]
    try:
        proc = subprocess.run(command + args, cwd=directory, capture_output=True, timeout=case["timeout"],
                              stdin=subprocess.DEVNULL, preexec_fn=limit_memory,
                              env={**os.environ, "PYTHONPATH": CHECKOUT})
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or b"", e.stderr or b""
    return {"rc": rc, "stdout": out.decode("latin-1"), "stderr": err.decode("latin-1")}


def run_tcpd(case: dict, prefix: str) -> dict:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
    tcpd = case.get("tcpd") or os.path.join(prefix, "sbin", "tcpd")
    with client, conn:
        proc = subprocess.Popen(case["args"], executable=tcpd, stdin=conn, stdout=conn, stderr=conn,
                                preexec_fn=limit_memory)
        conn.close()
        try:
            rc = proc.wait(timeout=case["timeout"])
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "timeout"
        client.settimeout(1)
        received = b""
        try:
            while chunk := client.recv(65536):
                received += chunk
        except OSError:
            pass
    return {"rc": rc, "received": received.decode("latin-1")}


def main(spec_path: str, out_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    root = tempfile.mkdtemp(prefix="pywrap-bounded-", dir=spec["workdir"])  # removed by the caller
    private_etc(root, spec["etc"])
    log_socket = private_dev(root)
    if spec.get("stuck_log"):
        held = fill_queue("/dev/log")  # noqa: F841 (kept open: what it sent stays in the queue)
        log = None
    else:
        log = SyslogCollector(log_socket)
    results = []
    for n, case in enumerate(spec["cases"]):
        directory = os.path.join(root, f"case{n}")
        os.mkdir(directory)
        tables = "/etc" if case["run"] == "tcpd" else directory
        for name, file_spec in case["files"].items():
            where = tables if name in ("hosts.allow", "hosts.deny") else directory
            make_file(os.path.join(where, name), file_spec, directory)
        for name in ("hosts.allow", "hosts.deny"):  # a table the case does not name is missing
            if name not in case["files"]:
                make_file(os.path.join(tables, name), None, directory)
        result = run_tcpd(case, spec["prefix"]) if case["run"] == "tcpd" else run_tool(case, directory)
        result["log"] = [] if log is None else log.collect()
        result["dir"] = directory
        results.append(result)
    with open(out_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
