"""make demo: pywrap's tcpd in front of a small daemon under a real openbsd-inetd, on loopback.

Run by `make demo` as `unshare -m PYTHON tools/demo.py PREFIX` after `make install PREFIX=...` (the tables
and REAL_DAEMON_DIR live under PREFIX). In a private mount namespace it gives syslog a private /dev/log so
the lines can be shown, starts `inetd -d -i CONF` with tcpd in front of the demo daemon, connects once from
127.0.0.1 (granted) and once from 127.0.0.2 (refused), prints what each client saw and what tcpd logged,
and stops everything it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from nsrunner import SyslogCollector, private_dev  # noqa: E402  (the tests' namespace helpers)

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


def main(prefix: str) -> int:
    libexec, etc = os.path.join(prefix, "libexec"), os.path.join(prefix, "etc")
    os.makedirs(libexec, exist_ok=True)
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(libexec, "demo-hello"), "w") as f:
        f.write(DAEMON)
    os.chmod(os.path.join(libexec, "demo-hello"), 0o755)
    with open(os.path.join(etc, "hosts.allow"), "w") as f:
        f.write("# who may use the demo daemon\ndemo-hello: 127.0.0.1\n")
    with open(os.path.join(etc, "hosts.deny"), "w") as f:
        f.write("# everybody else is refused\nALL: ALL\n")
    work = tempfile.mkdtemp(prefix="pywrap-demo-")
    log = SyslogCollector(private_dev(work))
    port = 24000 + os.getpid() % 1000
    conf = os.path.join(work, "inetd.conf")
    line = f"127.0.0.1:{port} stream tcp nowait nobody {prefix}/sbin/tcpd demo-hello\n"
    with open(conf, "w") as f:
        f.write(line)
    print(f"inetd.conf:   {line}", end="")
    for name in ("hosts.allow", "hosts.deny"):
        with open(os.path.join(etc, name)) as f:
            print(f"{name}:  " + " | ".join(x for x in f.read().splitlines() if not x.startswith("#")))
    inetd = subprocess.Popen(["/usr/sbin/inetd", "-d", "-i", conf], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        for source in ("127.0.0.1", "127.0.0.2"):
            seen = client(source, port)
            print(f"\nclient {source} received: {seen.strip() or '(nothing: refused)'}")
    finally:
        inetd.send_signal(signal.SIGTERM)
        inetd.wait()
    print("\nsyslog (the private /dev/log of this demo):")
    for entry in log.collect():
        if entry["ident"] != "inetd":  # inetd's own start-up chatter is not what the demo is about
            print(f"  <{entry['pri']}> {entry['ident']}: {entry['text']}")
    print(f"\nAsk tcpdmatch about it: {prefix}/sbin/tcpdmatch demo-hello 127.0.0.2")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1])))
