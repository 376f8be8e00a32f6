"""Issue 7's targets, ours against Debian's tcpd, tcpdmatch and tcpdchk, side by side in one run.

Usage: bench/tcpd_connect.py PREFIX [SAMPLES]   (PREFIX: `make install` with the default table paths)
Runs itself in a private mount namespace (as root) so that it can give both programs the same private
/etc/hosts.allow, /etc/hosts.deny and /etc/inetd.conf. Two services on loopback run a tiny daemon
(bench/stamp.c, which writes the time it started) through /usr/sbin/tcpd and through PREFIX/sbin/tcpd under a
real openbsd-inetd; each sample is connect -> EOF (tcpd's start, the rule check, the log line, the exec of
the daemon and its exit) and connect -> the daemon's start (tcpd's fork-to-exec time). Every measurement
alternates the programs it compares, SAMPLES (default 30) times each, and prints both medians and their ratio:
  1. fork-to-exec per connection with small rule files, against the bare start-up of the interpreter ours
     runs (`python3 -I -S -c pass`, fork to exit, sampled in the same loop); target ratio <= 2;
  2. huge deny lists (fail2ban's `ALL: a.b.c.d` lines, and a block list of domain names); target < 1 for
     100,000 lines, <= 0.1 for 1,000,000;
  3. peak RSS per connection (GNU time) against the bare interpreter; target <= 2;
  4. tcpdmatch and tcpdchk with small rule files against Debian's; target <= 2.
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

# Debian's openbsd-inetd, unpacked (never installed) by tools/debian_parts.py
INETD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "debian", "root",
                     "usr", "sbin", "inetd")

BARE = ["/usr/bin/python3", "-I", "-S", "-c", "pass"]


def connect_once(port: int) -> tuple[float, float]:
    """(connect -> EOF, connect -> the daemon's exec) in seconds; the daemon (stamp.c) writes the time
    it started, on the clock time.monotonic() reads."""
    start = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        while chunk := sock.recv(4096):
            received += chunk
    end = time.monotonic()
    exec_at = float(received.split()[0]) if received.strip() else end
    return end - start, exec_at - start


def build_stamp(directory: str) -> str:
    binary = os.path.join(directory, "stamp")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stamp.c")
    subprocess.run(["cc", "-O2", "-o", binary, source], check=True)
    return binary


def run_once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def fail2ban_deny(lines: int) -> str:
    """A hosts.deny as fail2ban grows it: `ALL: a.b.c.d` per banned address (none of them 127.0.0.1).
    No `ALL: ALL` at the end, so that the client is granted and the sample ends when the daemon exits
    instead of after a refusal; deciding costs the same full pass over the file either way."""
    rng = random.Random(lines)

    def octet() -> int:
        return rng.randrange(256)

    return "".join(f"ALL: {rng.randrange(1, 127)}.{octet()}.{octet()}.{octet()}\n" for _ in range(lines))


def domain_deny(lines: int) -> str:
    """A block list of domains and host names; the client (127.0.0.1, "localhost" from /etc/hosts) is in
    none of them, so both programs look its name up and compare it with every line."""
    rng = random.Random(lines)
    return "".join(f"ALL: .d{rng.randrange(10**9)}.example.com, host{n}.spam.example\n" for n in range(lines))


SMALL_ALLOW = "stamp: 127.0.0.1 10.0.0.0/8\nsshd: .example.com\n"
SMALL_DENY = "ALL: 192.0.2.0/24\n"
SMALL_SETS = {
    "comments only": ("# nothing here\n", "# nothing here\n"),
    "small rules, no name lookup": (SMALL_ALLOW, SMALL_DENY),
    "small rules, name lookup (/etc/hosts)": ("stamp: localhost\n", "ALL: ALL\n"),
}
HUGE_SETS = {
    "100,000-line hosts.deny (fail2ban)": ("", lambda: fail2ban_deny(100_000), 1.0),
    "1,000,000-line hosts.deny (fail2ban)": ("", lambda: fail2ban_deny(1_000_000), 0.1),
    "100,000-line domain block list": ("", lambda: domain_deny(100_000), 1.0),
}


class Services:
    """openbsd-inetd with the stamp daemon behind Debian's tcpd (port) and ours (port + 1)."""

    def __init__(self, prefix: str, port: int) -> None:
        self.prefix, self.port = prefix, port

    def __enter__(self) -> "Services":
        self.tmp = tempfile.TemporaryDirectory()
        os.chmod(self.tmp.name, 0o755)
        stamp = build_stamp(self.tmp.name)
        conf = os.path.join(self.tmp.name, "inetd.conf")
        with open(conf, "w") as f:
            f.write(f"127.0.0.1:{self.port} stream tcp nowait root /usr/sbin/tcpd {stamp}\n")
            f.write(f"127.0.0.1:{self.port + 1} stream tcp nowait root {self.prefix}/sbin/tcpd {stamp}\n")
        self.inetd = subprocess.Popen([INETD, "-d", "-i", conf], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return self

    def __exit__(self, *_) -> None:
        self.inetd.send_signal(signal.SIGTERM)
        self.inetd.wait()
        self.tmp.cleanup()

    def reference(self) -> tuple[float, float]:
        return connect_once(self.port)

    def ours(self) -> tuple[float, float]:
        return connect_once(self.port + 1)


def alternate(samples: int, *measures) -> list:
    """Median milliseconds of each measure, sampled in turn (a measure giving a tuple of times gives a
    tuple of medians)."""
    times: list[list] = [[] for _ in measures]
    for _ in range(samples):
        for got, measure in zip(times, measures, strict=True):
            got.append(measure())
    return [tuple(statistics.median(x) * 1000 for x in zip(*t, strict=True)) if isinstance(t[0], tuple)
            else statistics.median(t) * 1000 for t in times]


def write_tables(allow: str, deny: str) -> None:
    for name, text in (("hosts.allow", allow), ("hosts.deny", deny)):
        with open(f"/etc/{name}", "w") as f:
            f.write(text)


def verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "NOT met"


def per_connection(services: Services, samples: int) -> None:
    print("\n1. per connection, small rule files (target: pywrap's fork-to-exec <= 2 x bare interpreter)")
    print("   fork-to-exec: connect -> the daemon's exec; whole: connect -> EOF (daemon started and exited)")
    print(f"   {'rule set':40s} {'Debian':>9s} {'pywrap':>9s} {'bare':>9s}  pywrap/bare  "
          f"{'whole: Debian':>13s} {'pywrap':>9s}")
    for label, (allow, deny) in SMALL_SETS.items():
        write_tables(allow, deny)
        services.ours()  # not a sample: ours parses a changed table once and caches it
        (ref_whole, ref), (ours_whole, ours), bare = alternate(
            samples, services.reference, services.ours, lambda: run_once(BARE))
        print(f"   {label:40s} {ref:6.1f} ms {ours:6.1f} ms {bare:6.1f} ms  {ours / bare:5.2f} "
              f"{verdict(ours / bare, 2):7s}  {ref_whole:8.1f} ms {ours_whole:6.1f} ms")


def huge_tables(services: Services, samples: int) -> None:
    print("\n2. huge deny lists, client in none (target: ratio < 1 at 100,000 lines, <= 0.1 at 1,000,000)")
    print(f"   {'rule set':40s} {'Debian':>9s} {'pywrap':>9s}  ratio          first after a change")
    for label, (allow, deny, target) in HUGE_SETS.items():
        write_tables(allow, deny())
        first = services.ours()[0] * 1000  # parses the new table and writes the cache
        (ref, _), (ours, _) = alternate(samples, services.reference, services.ours)
        mark = verdict(ours / ref, target)
        print(f"   {label:40s} {ref:6.1f} ms {ours:6.1f} ms  {ours / ref:5.2f} {mark:7s}  {first:8.0f} ms")


def tools(prefix: str, samples: int) -> None:
    print("\n4. tcpdmatch and tcpdchk, small rule files (target: pywrap <= 2 x Debian)")
    write_tables(SMALL_ALLOW, SMALL_DENY)
    with open("/etc/inetd.conf", "w") as f:
        f.write("ftp stream tcp nowait root /usr/sbin/tcpd in.ftpd\n")
    commands = {
        "tcpdmatch in.ftpd 127.0.0.1": ["tcpdmatch", "in.ftpd", "127.0.0.1"],
        "tcpdchk -v": ["tcpdchk", "-v"],
    }
    print(f"   {'command':40s} {'Debian':>9s} {'pywrap':>9s} {'bare':>9s}  pywrap/Debian")
    for label, args in commands.items():
        ref, ours, bare = alternate(samples, lambda a=args: run_once([f"/usr/sbin/{a[0]}", *a[1:]]),
                                    lambda a=args: run_once([f"{prefix}/sbin/{a[0]}", *a[1:]]),
                                    lambda: run_once(BARE))
        print(f"   {label:40s} {ref:6.1f} ms {ours:6.1f} ms {bare:6.1f} ms  {ours / ref:5.2f} "
              f"{verdict(ours / ref, 2)}")


def main() -> int:
    if os.environ.get("PYWRAP_BENCH_NS") != "1":  # re-run inside a private mount namespace
        env = {**os.environ, "PYWRAP_BENCH_NS": "1"}
        return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, *sys.argv],
                              env=env).returncode
    prefix = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    port = 23000 + os.getpid() % 1000
    print(f"{samples} samples of each program per row, alternating; medians")
    with tempfile.TemporaryDirectory() as private:
        for name in ("hosts.allow", "hosts.deny", "inetd.conf"):
            open(os.path.join(private, name), "w").close()
            subprocess.run(["mount", "--bind", os.path.join(private, name), f"/etc/{name}"], check=True)
        with Services(prefix, port) as services:
            per_connection(services, samples)
            huge_tables(services, samples)
        print_rss(prefix)
        tools(prefix, samples)
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
    print("\n3. peak RSS per connection, small rule files (target: pywrap <= 2 x bare interpreter)")
    write_tables(SMALL_ALLOW, SMALL_DENY)
    samples: dict[str, list[int]] = {"Debian tcpd": [], "pywrap tcpd": [], "bare interpreter": []}
    for _ in range(10):
        samples["Debian tcpd"].append(max_rss_kib(["/usr/sbin/tcpd"], "/bin/true"))
        samples["pywrap tcpd"].append(max_rss_kib([f"{prefix}/sbin/tcpd"], "/bin/true"))
        samples["bare interpreter"].append(max_rss_kib(BARE))
    bare = statistics.median(samples["bare interpreter"])
    for label, values in samples.items():
        rss = statistics.median(values)
        print(f"   {label:40s} {rss / 1024:6.1f} MiB  {rss / bare:5.2f} x bare interpreter")


if __name__ == "__main__":
    sys.exit(main())
