"""make demo: pywrap's tcpd in front of a small daemon under a real openbsd-inetd, on loopback, checked.

Run by `make demo` as `PYTHON tools/demo.py PREFIX` after `make install PREFIX=...` (the tables and
REAL_DAEMON_DIR live under PREFIX). It re-runs itself in a private mount namespace (`unshare -m`), where
syslog gets a private /dev/log so the lines can be shown and checked, and the prefix is made reachable by
nobody however the directories above the checkout are set (root's home is 0700). There it starts
`inetd -d -i CONF` (Debian's, unpacked into build/debian by tools/debian_parts.py) with tcpd in front of
the demo daemon, run as nobody; connects once from 127.0.0.1 (must be granted: the daemon answers) and once
from 127.0.0.2 (must be refused: nothing arrives), and prints what each client saw and what tcpd logged.

It exits 0 only when both verdicts and both syslog lines are what the tables say; otherwise it says what
went wrong, shows every line that explains it (inetd's too), and exits 1. Its scratch directory lives under
PREFIX and is removed when it ends, whatever happened: nothing is left in /tmp.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(CHECKOUT, "tests"))
from nsrunner import SyslogCollector, private_dev, reachable_by_everyone  # noqa: E402  (namespace helpers)

INETD = os.path.join(CHECKOUT, "build", "debian", "root", "usr", "sbin", "inetd")
GRANTED, REFUSED = "127.0.0.1", "127.0.0.2"

DAEMON = """#!/usr/bin/python3 -S
# demo-hello: what a real daemon would be; tcpd has already checked the client when this runs.
import os, socket
peer = socket.socket(fileno=os.dup(0)).getpeername()[0]
os.write(1, f"hello {peer}, the demo daemon answers (running as uid {os.getuid()})\\n".encode())
"""


def client(source: str, port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=3, source_address=(source, 0)) as sock:
        sock.settimeout(2)
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except TimeoutError:
            pass
    return data.decode(errors="replace")


def write_setup(prefix: str) -> None:
    libexec, etc = os.path.join(prefix, "libexec"), os.path.join(prefix, "etc")
    os.makedirs(libexec, exist_ok=True)
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(libexec, "demo-hello"), "w") as f:
        f.write(DAEMON)
    os.chmod(os.path.join(libexec, "demo-hello"), 0o755)
    with open(os.path.join(etc, "hosts.allow"), "w") as f:
        f.write(f"# who may use the demo daemon\ndemo-hello: {GRANTED}\n")
    with open(os.path.join(etc, "hosts.deny"), "w") as f:
        f.write("# everybody else is refused\nALL: ALL\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_bound(port: int, inetd: subprocess.Popen) -> bool:
    """True once inetd holds the port (our own bind then fails); False if inetd died or never bound it."""
    for _ in range(100):
        if inetd.poll() is not None:
            return False
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return True
        time.sleep(0.05)
    return False


def problems(seen: dict[str, str], log: list[dict]) -> list[str]:
    """What differs from what the tables say should happen; empty when the demo worked."""
    found = []
    if f"hello {GRANTED}" not in seen.get(GRANTED, ""):
        found.append(f"client {GRANTED} should have been granted (hosts.allow names it), but did not get the "
                     "daemon's answer")
    if seen.get(REFUSED, "") != "":
        found.append(f"client {REFUSED} should have been refused (hosts.deny: ALL: ALL), but received data")
    texts = [(e["ident"], e["text"]) for e in log]
    for want in (f"connect from {GRANTED} ({GRANTED})", f"refused connect from {REFUSED} ({REFUSED})"):
        if ("demo-hello", want) not in texts:
            found.append(f"syslog has no line 'demo-hello: {want}'")
    return found


def inside(prefix: str, work: str) -> int:
    for path in (CHECKOUT, prefix):  # inetd runs tcpd as nobody
        reachable_by_everyone(path)
    write_setup(prefix)
    log = SyslogCollector(private_dev(work))
    port = free_port()
    conf = os.path.join(work, "inetd.conf")
    line = f"127.0.0.1:{port} stream tcp nowait nobody {prefix}/sbin/tcpd demo-hello\n"
    with open(conf, "w") as f:
        f.write(line)
    print(f"inetd.conf:   {line}", end="")
    for name in ("hosts.allow", "hosts.deny"):
        with open(os.path.join(prefix, "etc", name)) as f:
            print(f"{name}:  " + " | ".join(x for x in f.read().splitlines() if not x.startswith("#")))
    inetd_out = os.path.join(work, "inetd.out")
    with open(inetd_out, "wb") as out:
        inetd = subprocess.Popen([INETD, "-d", "-i", conf], stdout=out, stderr=out)
    seen: dict[str, str] = {}
    try:
        if wait_until_bound(port, inetd):
            for source in (GRANTED, REFUSED):
                seen[source] = client(source, port)
                print(f"\nclient {source} received: {seen[source].strip() or '(nothing: refused)'}")
    finally:
        inetd.send_signal(signal.SIGTERM)
        inetd.wait()
    entries = log.collect()
    print("\nsyslog (the private /dev/log of this demo):")
    for entry in entries:
        if entry["ident"] != "inetd":  # inetd's own start-up chatter is not what the demo is about
            print(f"  <{entry['pri']}> {entry['ident']}: {entry['text']}")
    found = problems(seen, entries) if seen else [f"inetd did not start listening on port {port}"]
    if found:
        return explain(found, entries, inetd_out)
    print(f"\nThe demo worked. Ask tcpdmatch about it: {prefix}/sbin/tcpdmatch demo-hello {REFUSED}")
    return 0


def explain(found: list[str], entries: list[dict], inetd_out: str) -> int:
    print("\nDEMO FAILED:", file=sys.stderr)
    for problem in found:
        print(f"  - {problem}", file=sys.stderr)
    print("every syslog line, inetd's included:", file=sys.stderr)
    for entry in entries:
        print(f"  <{entry['pri']}> {entry['ident']}: {entry['text']}", file=sys.stderr)
    with open(inetd_out, errors="replace") as f:
        print("inetd's own output:\n" + "".join("  " + x for x in f.readlines()[-20:]), file=sys.stderr)
    return 1


def main(prefix: str) -> int:
    if not os.access(INETD, os.X_OK):
        print(f"DEMO FAILED: {INETD} is missing (tools/debian_parts.py unpacks it)", file=sys.stderr)
        return 1
    work = os.path.join(prefix, "demo-run")  # scratch space; mounts inside it vanish with the namespace
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chmod(work, 0o755)
    try:
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                               os.path.abspath(__file__), "--inside", prefix, work]).returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1] == "--inside":
        sys.exit(inside(os.path.abspath(sys.argv[2]), sys.argv[3]))
    sys.exit(main(os.path.abspath(sys.argv[1])))
