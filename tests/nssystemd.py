"""Run tcpd under the real systemd-socket-activate, inside private mount and network namespaces.

Started as `unshare -m -n --propagation private PYTHON tests/nssystemd.py SPEC.json OUT.json` (see
test_systemd.py). Inside: a private /etc (the spec's hosts.allow and hosts.deny), a private /dev/log whose
lines are collected, and a network namespace of our own with only loopback up, so the fixed ports are free
and nothing leaves it. For each run it starts `systemd-socket-activate ARGS` ({tcpd}, {probe}, {port}
filled in) with fd 0 on /dev/null, waits until the port is bound, makes the run's connections (TCP from a
127.0.0.x source, read to end of file; or one UDP datagram), records what each client received and the
syslog lines, and stops systemd-socket-activate by pid.
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

# The daemon behind tcpd: reports its arguments, the LISTEN_* variables it got and what fds 0-3 are.
PROBE = r'''#!/usr/bin/python3 -S
import json, os, socket, stat, sys
def kind(fd):
    try:
        return "socket" if stat.S_ISSOCK(os.fstat(fd).st_mode) else "other"
    except OSError:
        return None
report = {"argv": sys.argv[1:], "fds": [kind(fd) for fd in range(4)],
          "listen": {k: v for k, v in os.environ.items() if k.startswith("LISTEN_")}}
sock = socket.socket(fileno=os.dup(0))
if sock.type == socket.SOCK_DGRAM:
    data, peer = sock.recvfrom(8192)
    report["datagram"] = data.decode()
    sock.sendto(json.dumps(report).encode(), peer)
else:
    os.write(1, (json.dumps(report) + "\n").encode())
'''
WAIT = 30  # seconds at most for anything to happen; a bound against hangs, not a timing assertion


def bound(port: int, udp: bool) -> bool:
    """Whether something listens on (TCP) or is bound to (UDP) 127.0.0.1:port, from /proc/net."""
    with open(f"/proc/net/{'udp' if udp else 'tcp'}") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and (udp or fields[3] == "0A"):
                return True
    return False


def tcp_client(port: int, source: str) -> dict:
    with socket.socket() as sock:
        sock.settimeout(WAIT)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        received = b""
        try:
            while chunk := sock.recv(65536):  # to end of file: tcpd or the daemon has exited
                received += chunk
        except ConnectionResetError:
            return {"received": received.decode("latin-1"), "reset": True}
    return {"received": received.decode("latin-1")}


def udp_client(port: int, source: str, proc: subprocess.Popen) -> dict:
    """One datagram; the answer if one comes before the (exec'ed) service has exited."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(b"hello", ("127.0.0.1", port))
        sock.settimeout(0.2)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                return {"received": sock.recv(65536).decode("latin-1")}
            except TimeoutError:
                if proc.poll() is not None:
                    return {"received": ""}
    return {"received": "", "timeout": True}


def run_one(run: dict, port: int, tcpd: str, probe: str, work: str, log: SyslogCollector) -> dict:
    args = [a.format(tcpd=tcpd, probe=probe, port=port) for a in run["args"]]
    udp = "-d" in args
    with open(os.path.join(work, f"activate-{port}.log"), "wb") as out:
        proc = subprocess.Popen(["systemd-socket-activate", *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out)
    try:
        deadline = time.monotonic() + WAIT
        while not bound(port, udp) and time.monotonic() < deadline:
            time.sleep(0.02)
        clients = []
        for source in run["sources"]:
            clients.append(udp_client(port, source, proc) if udp else tcp_client(port, source))
        if not run.get("accept", True):  # exec'ed in place: wait for tcpd (or the daemon) to be done
            proc.wait(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=WAIT)
    return {"clients": clients, "log": log.collect(), "status": proc.returncode}


def main(spec_path: str, out_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    root = tempfile.mkdtemp(prefix="pywrap-systemd-", dir=spec["workdir"])  # removed by the caller
    os.chmod(root, 0o755)
    private_etc(root, spec["etc"])
    log = SyslogCollector(private_dev(root))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    probe = os.path.join(root, "probe")
    with open(probe, "w") as f:
        f.write(PROBE)
    os.chmod(probe, 0o755)
    results = {}
    for n, (name, run) in enumerate(spec["runs"].items()):
        tcpd = run.get("tcpd", os.path.join(spec["prefix"], "sbin", "tcpd"))
        results[name] = run_one(run, 7000 + n, tcpd, probe, root, log)
    with open(out_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
