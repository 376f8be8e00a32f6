"""Per-connection cost of tcpd: ours against Debian's, side by side, under a real openbsd-inetd.

Usage: bench/tcpd_connect.py PREFIX [SAMPLES]   (PREFIX: where `make install` put ours)
Two services on loopback run /bin/true through /usr/sbin/tcpd and through PREFIX/sbin/tcpd; connections
alternate between them; each sample is connect -> EOF (tcpd's start, the rule check with small tables, the
log line, the exec of the daemon and its exit). Prints medians and their ratio, and the bare start-up of
the interpreter ours runs (`python3 -I -S -c pass`) for scale. Uses the system's /etc/hosts.allow and
/etc/hosts.deny as they are (keep them small), no name lookups.
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def connect_once(port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while sock.recv(4096):
            pass
    return time.perf_counter() - start


def main() -> int:
    prefix = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    base = 23000 + os.getpid() % 1000
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "inetd.conf")
        with open(conf, "w") as f:
            f.write(f"127.0.0.1:{base} stream tcp nowait root /usr/sbin/tcpd /bin/true\n")
            f.write(f"127.0.0.1:{base + 1} stream tcp nowait root {prefix}/sbin/tcpd /bin/true\n")
        inetd = subprocess.Popen(["/usr/sbin/inetd", "-d", "-i", conf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            ref, ours = [], []
            for _ in range(samples):
                ref.append(connect_once(base))
                ours.append(connect_once(base + 1))
        finally:
            inetd.send_signal(signal.SIGTERM)
            inetd.wait()
    bare = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
    r, o, b = (statistics.median(x) * 1000 for x in (ref, ours, bare))
    print(f"samples: {samples} each, alternating")
    print(f"Debian tcpd:  median {r:7.1f} ms")
    print(f"pywrap tcpd:  median {o:7.1f} ms   ratio {o / r:.2f}")
    print(f"python3 -I -S -c pass: median {b:7.1f} ms   (ours / bare interpreter: {o / b:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
