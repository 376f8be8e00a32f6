"""Run tcpd scenarios under a real openbsd-inetd, for Debian's tcpd and ours, inside a private mount namespace.

Started as `unshare -m PYTHON tests/nstcpd.py SPEC.json OUT.json` (see tcpd_sandbox.py). Inside: a private
/etc (hosts, resolv.conf at loopback, the scenario's hosts.allow / hosts.deny), a private /usr/sbin holding
Debian's tcpd and inetd plus the probe daemon `showargs` (so REAL_DAEMON_DIR=/usr/sbin serves both), and a
private /dev/log whose lines are collected. For each scenario and each variant ("reference": /usr/sbin/tcpd,
"ours": the installed launcher) it starts `inetd -d -i CONF` on loopback ports, makes the scenario's
connections from 127.0.0.x source addresses, records what each client received and the syslog lines, and
stops inetd by pid. Nothing leaves the machine. With "link_local" in the spec it must run in a network
namespace of its own (`unshare -m -n`): it brings loopback up with fe80::1 on it, a source for clients.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from debian import INETD
from nsrunner import CHECKOUT, SyslogCollector, private_dev, private_etc, reachable_by_everyone

# showargs is a tiny C program (a #! script would lose argv[0]) that hands its whole argv to the Python probe,
# and its own signal state (SigIgn and SigBlk of /proc/self/status, as it was exec'ed with them; the Python
# probe cannot see them: the interpreter ignores SIGPIPE and SIGXFSZ at start-up) in PROBE_SIGIGN/SIGBLK.
PROBE_C = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char line[256];
    FILE *status = fopen("/proc/self/status", "r");
    while (status != NULL && fgets(line, sizeof(line), status) != NULL) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "SigIgn:\t", 8) == 0) setenv("PROBE_SIGIGN", line + 8, 1);
        if (strncmp(line, "SigBlk:\t", 8) == 0) setenv("PROBE_SIGBLK", line + 8, 1);
    }
    if (status != NULL) fclose(status);
    char **args = calloc(argc + 4, sizeof(char *));
    args[0] = "python3"; args[1] = "-S"; args[2] = "/usr/sbin/showargs.py";
    for (int i = 0; i < argc; i++) args[i + 3] = argv[i];
    execv("/usr/bin/python3", args);
    return 127;
}
'''

PROBE = r'''
# showargs.py: reports how tcpd ran showargs (argv, ids, umask, nice, FOO, fd types, signals), then exits.
import json, os, socket, stat, sys
mask = os.umask(0); os.umask(mask)
report = {"argv": sys.argv[1:], "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
          "umask": oct(mask), "nice": os.nice(0), "FOO": os.environ.get("FOO"),
          "sockets": [stat.S_ISSOCK(os.fstat(fd).st_mode) for fd in (0, 1, 2)],
          "SigIgn": os.environ.get("PROBE_SIGIGN"), "SigBlk": os.environ.get("PROBE_SIGBLK")}
sock = socket.socket(fileno=os.dup(0))
if sock.type == socket.SOCK_DGRAM:
    data, peer = sock.recvfrom(8192)
    report["datagram"] = data.decode()
    sock.sendto(json.dumps(report).encode(), peer)
else:
    os.write(1, (json.dumps(report) + "\n").encode())
'''

TERMINAL = ("connect from", "refused connect from", "twist ")


def start_inetd(conf_text: str, work: str) -> subprocess.Popen:
    conf = os.path.join(work, "inetd.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    out = open(os.path.join(work, "inetd.log"), "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(["/usr/sbin/inetd", "-d", "-i", conf], stdout=out, stderr=out,
                            stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def udp_queue(port: int) -> int:
    """Bytes waiting in the receive queue of the UDP socket bound to `port` (from /proc/net/udp)."""
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    return -1


def terminal_seen(lines: list[dict]) -> bool:
    return any(entry["text"].startswith(TERMINAL) or "cannot execute" in entry["text"] for entry in lines)


def connect_tcp(port: int, source: str, send: str, log: SyslogCollector, seen: list[dict],
                ip_options: str = "", wait: float = 6, until_closed: bool = False) -> dict:
    """What the client received, when tcpd decided ("seconds"), and whether the connection was closed within
    `wait` ("closed"), with how many of the syslog lines had arrived by then ("lines_before_close").
    `until_closed`: read until the connection closes (or `wait` ends), not only until shortly after the
    verdict."""
    received, closed, lines_before_close = b"", False, None
    started, first = time.monotonic(), len(seen)
    host = "::1" if ":" in source else "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        try:
            sock = socket.socket(family)
            sock.settimeout(2)
            if ip_options:  # e.g. record route: the server side then sees IP options on the connection
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes.fromhex(ip_options))
            sock.bind(socket.getaddrinfo(source, 0, family, socket.SOCK_STREAM)[0][4])  # fe80::1%lo too
            sock.connect((host, port))
            break
        except OSError:
            sock.close()
            time.sleep(0.05)
    else:
        return {"error": "cannot connect"}
    with sock:
        if send:
            sock.sendall(send.encode())
        deadline, grace, decided = time.monotonic() + wait, None, None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 0.1)
            if ready:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    closed, lines_before_close = True, len(seen) - first
                    break
                received += chunk
            seen.extend(log.collect_now())
            if grace is None and terminal_seen(seen[first:]):
                decided = time.monotonic() - started
                grace = time.monotonic() + 0.5
            if grace is not None and time.monotonic() > grace and not until_closed:
                break
    return {"received": received.decode("latin-1"), "seconds": decided, "closed": closed,
            "lines_before_close": lines_before_close}


def connect_udp(port: int, source: str, send: str, log: SyslogCollector, seen: list[dict],
                ip_options: str = "", wait: float = 6) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(send.encode(), ("127.0.0.1", port))
        sock.settimeout(0.1)
        received, deadline, grace, first = b"", time.monotonic() + wait, None, len(seen)
        while time.monotonic() < deadline:
            try:
                received += sock.recv(65536)
                break
            except (TimeoutError, OSError):
                pass
            seen.extend(log.collect_now())
            if grace is None and terminal_seen(seen[first:]):
                grace = time.monotonic() + 0.5
            if grace is not None and time.monotonic() > grace:
                break
        return {"received": received.decode("latin-1"), "queue": udp_queue(port)}


def write_tables(scenario: dict, work: str, port: int) -> None:
    for name in ("hosts.allow", "hosts.deny"):
        path = os.path.join("/etc", name)
        if os.path.lexists(path):
            os.unlink(path)
        text = scenario.get(name)
        if text is not None:
            with open(path, "wb") as f:
                f.write(text.replace("/D/", work + "/").replace("{port}", str(port)).encode("latin-1"))


def signal_state(signals: dict) -> None:
    """In the child, before it execs tcpd: the scenario's ignored and blocked signals (by name)."""
    for name in signals.get("ignore", []):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, [getattr(signal, name) for name in signals.get("block", [])])


def run_direct(scenario: dict, tcpd: str, work: str, log: SyslogCollector) -> dict:
    """tcpd started by hand with a pipe or an AF_UNIX socket pair as fds 0-2 (no inetd), with the
    scenario's "signals" ignored and blocked."""
    write_tables(scenario, work, 0)
    log.collect()
    if scenario["direct"] == "pipe":
        theirs, ours = os.pipe()
    else:
        mine, peer = socket.socketpair()
        theirs, ours = peer.detach(), mine.detach()
    start = time.monotonic()
    proc = subprocess.Popen([scenario["argv0"]], executable=tcpd, stdin=theirs, stdout=theirs, stderr=theirs,
                            preexec_fn=lambda: signal_state(scenario.get("signals", {})))
    os.close(theirs)
    received = b""
    if scenario["direct"] != "pipe":
        with socket.socket(fileno=ours) as sock:
            sock.settimeout(15)
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except OSError:
                pass
    else:
        os.close(ours)
    status = proc.wait(timeout=30)
    return {"clients": [{"received": received.decode("latin-1")}], "log": log.collect(),
            "files": read_files(scenario, work), "status": status, "seconds": round(time.monotonic() - start, 1)}


def read_files(scenario: dict, work: str) -> dict:
    files = {}
    for name in scenario.get("read", []):
        try:
            with open(os.path.join(work, name), encoding="latin-1") as f:
                files[name] = f.read()
        except OSError:
            files[name] = None
    return files


def run_variant(scenario: dict, tcpd: str, port: int, work: str, log: SyslogCollector) -> dict:
    if "direct" in scenario:
        return run_direct(scenario, tcpd, work, log)
    write_tables(scenario, work, port)
    for name, text in scenario.get("files", {}).items():
        path = os.path.join(work, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text.replace("/D/", work + "/"))
    conf = scenario["conf"].format(tcpd=tcpd, port=port, dir=work)
    log.collect()
    inetd = start_inetd(conf, work)
    time.sleep(0.3)
    clients, seen = [], []
    try:
        for conn in scenario["connections"]:
            connect = connect_udp if conn.get("udp") else connect_tcp
            before = len(seen)
            options = {"until_closed": True} if conn.get("until_closed") else {}
            clients.append(connect(port, conn.get("source", "127.0.0.1"), conn.get("send", ""), log, seen,
                                   conn.get("ip_options", ""), conn.get("wait", 6), **options))
            clients[-1]["log"] = seen[before:]
    finally:
        stop(inetd)
    time.sleep(0.1)
    seen.extend(log.collect())
    return {"clients": clients, "log": seen, "files": read_files(scenario, work)}


def private_sbin(root: str) -> None:
    sbin = os.path.join(root, "sbin")
    os.mkdir(sbin)
    for program in ("tcpd", "try-from"):
        shutil.copy2(os.path.join("/usr/sbin", program), sbin)
    shutil.copy2(INETD, sbin)
    with open(os.path.join(sbin, "showargs.py"), "w") as f:
        f.write(PROBE)
    with open(os.path.join(root, "showargs.c"), "w") as f:
        f.write(PROBE_C)
    subprocess.run(["cc", "-o", os.path.join(sbin, "showargs"), os.path.join(root, "showargs.c")], check=True)
    subprocess.run(["mount", "--bind", sbin, "/usr/sbin"], check=True)


def main(spec_path: str, out_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    reachable_by_everyone(CHECKOUT)  # cases run as nobody
    root = tempfile.mkdtemp(prefix="pywrap-e2e-", dir=spec.get("workdir"))  # removed by the caller
    if spec.get("link_local"):  # a network namespace of its own (unshare -n): loopback up, with fe80::1 on it
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "addr", "add", "fe80::1/64", "dev", "lo", "nodad"], check=True)
    os.chmod(root, 0o755)
    private_etc(root, spec.get("etc", {}))
    log = SyslogCollector(private_dev(root))
    private_sbin(root)
    variants = {"reference": "/usr/sbin/tcpd", "ours": os.path.join(spec["prefix"], "sbin", "tcpd")}
    results = []
    for n, scenario in enumerate(spec["scenarios"]):
        result = {}
        for m, (variant, tcpd) in enumerate(variants.items()):
            if variant not in scenario.get("variants", variants):
                continue
            work = os.path.join(root, f"s{n}-{variant}")
            os.mkdir(work)
            os.chmod(work, 0o755)
            tcpd = scenario.get("tcpd", {}).get(variant, tcpd).replace("/D/", work + "/")
            for link, source in scenario.get("copies", {}).items():  # e.g. the easy install
                target = link.replace("/D/", work + "/")
                shutil.copy2(source.format(tcpd=tcpd), target)
            result[variant] = run_variant(scenario, tcpd, spec["base_port"] + 2 * n + m, work, log)
        results.append(result)
    with open(out_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
