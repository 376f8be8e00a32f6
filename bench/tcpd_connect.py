"""Per-connection cost of tcpd: ours against Debian's, side by side, under a real openbsd-inetd.

Usage: bench/tcpd_connect.py PREFIX [SAMPLES]   (PREFIX: `make install` with the default table paths)
Runs itself in a private mount namespace (as root) so that it can give both programs the same private
/etc/hosts.allow and /etc/hosts.deny. Two services on loopback run /bin/true through /usr/sbin/tcpd and
through PREFIX/sbin/tcpd; connections alternate between them; each sample is connect -> EOF (tcpd's start,
the rule check, the log line, the exec of the daemon and its exit). For each rule set it prints both
medians and their ratio, and the bare start-up of the interpreter ours runs (`python3 -I -S -c pass`).
"""

import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def connect_once(port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        while sock.recv(4096):
            pass
    return time.perf_counter() - start


def fail2ban_deny(lines: int) -> str:
    """A hosts.deny as fail2ban grows it: `ALL: a.b.c.d` per banned address (none of them 127.0.0.1).
    No `ALL: ALL` at the end, so that the client is granted and the sample ends when the daemon exits
    instead of after tcpd's refusal pause; deciding costs the same full pass over the file either way."""
    rng = random.Random(lines)

    def octet() -> int:
        return rng.randrange(256)

    return "".join(f"ALL: {rng.randrange(1, 127)}.{octet()}.{octet()}.{octet()}\n" for _ in range(lines))


RULE_SETS = {
    "comments only": ("# nothing here\n", "# nothing here\n"),
    "small rules, no name lookup": ("true: 127.0.0.1 10.0.0.0/8\nsshd: .example.com\n",
                                    "ALL: 192.0.2.0/24\n"),
    "small rules, name lookup (/etc/hosts)": ("true: localhost\n", "ALL: ALL\n"),
    "100,000-line hosts.deny": ("", lambda: fail2ban_deny(100_000)),
    "1,000,000-line hosts.deny": ("", lambda: fail2ban_deny(1_000_000)),
}


def measure(prefix: str, samples: int, base: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "inetd.conf")
        with open(conf, "w") as f:
            f.write(f"127.0.0.1:{base} stream tcp nowait root /usr/sbin/tcpd /bin/true\n")
            f.write(f"127.0.0.1:{base + 1} stream tcp nowait root {prefix}/sbin/tcpd /bin/true\n")
        inetd = subprocess.Popen(["/usr/sbin/inetd", "-d", "-i", conf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            connect_once(base + 1)  # ours parses a changed table once and caches it: not a sample
            ref, ours = [], []
            for _ in range(samples):
                ref.append(connect_once(base))
                ours.append(connect_once(base + 1))
        finally:
            inetd.send_signal(signal.SIGTERM)
            inetd.wait()
    return ref, ours


def main() -> int:
    if os.environ.get("PYWRAP_BENCH_NS") != "1":  # re-run inside a private mount namespace
        env = {**os.environ, "PYWRAP_BENCH_NS": "1"}
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, *sys.argv],
                              env=env).returncode
    prefix = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    base = 23000 + os.getpid() % 1000
    print(f"samples: {samples} each, alternating Debian's tcpd and ours")
    with tempfile.TemporaryDirectory() as tables:
        for name in ("hosts.allow", "hosts.deny"):
            open(os.path.join(tables, name), "w").close()
            subprocess.run(["mount", "--bind", os.path.join(tables, name), f"/etc/{name}"], check=True)
        for label, (allow, deny) in RULE_SETS.items():
            for name, text in (("hosts.allow", allow), ("hosts.deny", deny)):
                with open(os.path.join(tables, name), "w") as f:
                    f.write(text() if callable(text) else text)
            ref, ours = measure(prefix, samples if "000-line" not in label else max(samples // 3, 5), base)
            base += 2
            r, o = statistics.median(ref) * 1000, statistics.median(ours) * 1000
            print(f"{label:40s} Debian {r:6.1f} ms   pywrap {o:6.1f} ms   ratio {o / r:5.2f}")
    bare = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", "pass"], check=True)
        bare.append(time.perf_counter() - start)
    print(f"{'python3 -I -S -c pass (bare interpreter)':40s} {statistics.median(bare) * 1000:6.1f} ms")
    print_rss(prefix)
    return 0


def max_rss_kib(command: list[str], argv0: str | None = None) -> int:
    """Peak resident set (KiB) of one run of `command` (argv[0] set to `argv0`) with a connected socket as
    fds 0-2, like inetd gives. GNU time measures it, so that none of this Python process is counted."""
    mine, theirs = socket.socketpair()
    with mine, theirs, tempfile.NamedTemporaryFile() as out:
        script = 'exec -a "$0" "$@"'  # bash sets argv[0] for the program under test
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", out.name, "bash", "-c", script,
                                 argv0 or command[0], *command], stdin=theirs, stdout=theirs, stderr=theirs)
        theirs.close()
        mine.settimeout(30)
        try:
            while mine.recv(4096):
                pass
        except OSError:
            pass
        proc.wait()
        return int(open(out.name).read().split()[-1])


def print_rss(prefix: str) -> None:
    """Peak RSS per connection with small rules: tcpd granting /bin/true, against the bare interpreter."""
    for name, text in (("hosts.allow", "true: 127.0.0.1 10.0.0.0/8 [::1]\nsshd: .example.com\n"),
                       ("hosts.deny", "ALL: 192.0.2.0/24\n")):
        with open(f"/etc/{name}", "w") as f:
            f.write(text)
    samples = {"Debian tcpd": [], "pywrap tcpd": [], "bare interpreter": []}
    for _ in range(10):
        samples["Debian tcpd"].append(max_rss_kib(["/usr/sbin/tcpd"], "/bin/true"))
        samples["pywrap tcpd"].append(max_rss_kib([f"{prefix}/sbin/tcpd"], "/bin/true"))
        samples["bare interpreter"].append(max_rss_kib(["/usr/bin/python3", "-I", "-S", "-c", "pass"]))
    bare = statistics.median(samples["bare interpreter"])
    for label, values in samples.items():
        rss = statistics.median(values)
        print(f"{'peak RSS, ' + label:40s} {rss / 1024:6.1f} MiB   ({rss / bare:.2f} x bare interpreter)")


if __name__ == "__main__":
    sys.exit(main())
