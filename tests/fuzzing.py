"""The fuzz engine behind tests/test_fuzz.py (a bounded run in `make test`) and tools/fuzz.py (`make fuzz`).

Contract:
- `make_case(seed, index)` is a pure function: the same (seed, index) always gives the same case (with this
  generator and tests/fixtures/), so a case is replayed from two numbers. A case is a pair of tables (hosts.allow, hosts.deny; either may be absent) and
  the files they name, from tests/generator.py's grammar-aware generator, from block-list shapes (runs of
  plain rules: what the index answers) and from the real-world fixtures, then mutated (byte flips, NUL, CR,
  high bytes, junk tokens, numbers of up to 5,000 digits, lines around and far over the 2046-character
  limit, deep EXCEPT nesting, continuations, IPv6 brackets and %scopes, %-expansions in options, /file
  lists); plus one query (daemon[@server], [user@]client, as tcpdmatch and the library take it).
- `Worker.check(case)` runs one case in-process and returns its failures (an empty list: it passed):
  1. the decision core with its index (runs of at least MIN_RUN plain rules, MIN_RUN 1, 2, 3 or 16;
     sometimes loaded from the parsed-table cache) and without it (MIN_RUN beyond any run, as
     tests/test_index.py forces the scan) must give the same verdict, the same matched rule, the same
     diagnostics in the same contexts, the same option effects, and look the host name and user up at the
     same points (when the tables have no run at all the two are the same items, and it runs once);
  2. tcpdmatch (`run(argv, stdout, stderr)`, -d in the work directory) must not raise, must exit 0, 1 or 2,
     print an `access:` line whenever it exits 0, and print the same bytes with the index as with the scan;
  3. tcpdchk (-d with -v, -a, --no-dns, --json, -i) must not raise and must exit 0, 1 or 2 (--json: valid
     JSON on stdout);
  4. the library (hosts_ctl, AccessRequest.from_endpoints(...).verdict()) must not raise and must never
     deny with its "internal error" (the catch-all that hides an exception).
- `Worker` (`python tests/fuzzing.py --worker ...`) runs cases in a child process that has an address-space
  limit (RLIMIT_AS) and a per-case bound on its peak RSS, with SIGALRM per case (a hang is a failure, with
  the traceback of where it hung), names answered from a private hosts file and an in-process fake DNS
  (an audit hook fails any case that tries to reach a real name server or send a packet), netgroups from a
  fake, and spawn/aclexec never run. `fuzz(...)` supervises the workers: one that stops reporting (a hang in
  C code) is killed, one that dies (a crash, the memory limit) is restarted after the case it died in, and
  each failure's input is saved to a directory of its own (case.json, the files, failure.txt) and printed.
- `replay(path)` runs a saved case again (tools/fuzz.py --replay).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from generator import generate  # noqa: E402  (tests/ is not a package)

PLACEHOLDER = "/D/"  # in files and arguments: the work directory (a fixed-length name, see Worker)
TMATCH_STATUSES = {0, 1, 2}
TCHK_STATUSES = {0, 1, 2}
SCAN = 10**9  # pywrap.index.MIN_RUN that no run reaches: every rule is scanned

# --- case generation -------------------------------------------------------------------------------------------

HOSTS = """127.0.0.1 localhost
10.0.0.5 good.example.com good
10.0.0.13 y.example.com x.example.com
10.0.0.12 x.example.com
10.0.0.12 z.example.com
10.0.0.40 nodots
10.0.0.20 multi.example.com
10.0.0.21 multi.example.com
10.0.0.30 Mixed.Example.Com
2001:db8::7 six.example.com
::ffff:10.0.0.50 mapped.example.com
10.0.0.60
fe80::1%lo scoped.example.com
10.0.0.70 Caps.EXAMPLE.com caps
"""

SUPPORT = {
    "self": "/D/self 10.0.0.9\n",
    "chain1": "/D/chain2 10.0.0.77\n",
    "chain2": "/D/list [::1]\n",
    "huge": ("1" + "0" * 4999 + ".0.0.1 10.0.0." + "9" * 5000 + " 10.0.0.0/" + "8" * 5000 + " ["
             + "f" * 5000 + "::1]\n"),
    "banners/22": "port %d %a %h %u %c %s\n",
}

CLIENT_ADDRESSES = ["10.0.0.1", "10.0.0.5", "10.0.0.12", "10.0.0.77", "10.0.0.99", "10.1.2.3", "127.0.0.1",
                    "192.168.0.1", "0.0.0.0", "255.255.255.255", "8.1.2.3", "10.0.0.255", "::1", "2001:db8::5",
                    "2001:db8::7", "::ffff:10.0.0.1", "::ffff:10.0.0.5", "fe80::1%lo", "fe80::1%1", "fe80::1%eth9",
                    "::", "010.0.0.1", "10.0.0.01", "0xa.0.0.1", "127.1", "10.1", "1" + "0" * 30 + ".0.0.1",
                    "1" + "0" * 5000, "10.0.0." + "1" * 5000, "0" * 4400 + "10.0.0.1", "::ffff:10.0.0." + "9" * 4301,
                    "unknown", "paranoid", "10.0.0.1 ", "1.2.3.4.5", "[::1]", ""]
CLIENT_NAMES = ["good.example.com", "good", "z.example.com", "x.example.com", "multi.example.com", "localhost",
                "six.example.com", "Mixed.Example.Com", "nodots", "mapped.example.com", "scoped.example.com",
                "caps", "nosuch.example.com", "dnsonly.example.com", "slow.example.com", "servfail.example.com",
                "UNKNOWN", "PARANOID", "a" * 300, "host\xe9.example.com", "-x", "*"]
LOOKED_UP_NAMES = ["good.example.com", "unknown", "paranoid", "x.example.com", "LOCALHOST", "nodots",
                   "mail.example.com", "a.b.example.com", "host-1.evil.org", "www.", ".1", "10.example.com",
                   "Caps.EXAMPLE.com", "", "a" * 200, "h\xe9.example.com"]
USERS = ["", "root@", "bob@", "alice@", "@", "a b@", "%u@", "r\xe9my@", "9" * 3000 + "@", "x@y@"]
DAEMONS = ["sshd", "in.telnetd", "in.ftpd", "portmap", "SSHD", "/usr/sbin/sshd", "22", "in.fingerd", "ALL",
           "tel*", "\xe9d", "a" * 200, "0" * 5000, "sshd\t", "-", "EXCEPT", "sshd:x"]
SERVERS = ["", "", "", "@127.0.0.1", "@localhost", "@unknown", "@10.0.0.5", "@[::1]", "@::1", "@good",
           "@nosuch.example.com", "@multi.example.com", "@fe80::1%lo", "@1" + "0" * 4000, "@"]

WORDS = [".example.com", ".com", "example.com", "Mail.Example.COM", "host-1.evil.org", ".evil.org", "localhost",
         "unknown", "www.", "a.b.", "10.", "192.168.", "127.0.0.", ".1", ".0.1", "010.0.0.1", "x_y.lan", ".",
         "good.example.com", "good", "GOOD.example.COM", "10.0.0.", "10.0.", ".0.0.5", "nodots", "caps",
         "x.example.com", "multi.example.com", "z.example.com.", "0.", "-"]
MASKS = ["8", "16", "24", "32", "0", "33", "1", "255.255.0.0", "255.255.255.255", "0.0.0.0", "255.0.255.0",
         "08", "0x8", "+8", "8x", "255.255.255.0 ", "-1", "4294967296", "9" * 40]
SPECIALS = [b"\0", b"\r", b"\r\n", b"\t", b"\x0b", b"\x0c", b"\xff", b"\xe9", b"\x80", b"\xa0", b"\x85", b"\\\n",
            b"\\", b"\n", b":", b"\\:", b"[", b"]", b"@", b",", b" ", b"#", b"%", b"*", b"?", b"/", b".", b"=",
            b"\x1f", b"\x7f"]
TOKENS = [b"EXCEPT", b"except", b"ALL", b"KNOWN", b"LOCAL", b"UNKNOWN", b"PARANOID", b"FAIL", b"[fe80::1%lo]",
          b"[fe80::1%1]/10", b"[fe80::1%eth9]", b"[::ffff:10.0.0.0]/104", b"[::1]/128", b"[::]/0", b"[2001:db8::]/",
          b"[1::2::3]", b"[::1", b"::1]", b"[]", b"[:]", b"[::ffff:10.0.0.1]/200", b"10.0.0.0/8", b"10.0.0.1/",
          b"/8", b"/D/list", b"/D/self", b"/D/chain1", b"/D/huge", b"/D/missing", b"/D/banners", b"/D/",
          b"/D/list/x", b"@trusted", b"@", b"@@", b"user@", b"*@ALL", b"?@10.0.0.1", b"ALL@ALL", b"a@[::1]",
          b"%a%n%h%c%s%u%d%r%R%A%H%N%p%%%x%", b"%", b"%h" * 40, b"allow", b"deny", b"twist echo %h",
          b"spawn echo %c", b"aclexec false", b"aclexec true", b"banners /D/banners", b"rfc931 ", b"nice ",
          b"linger ", b"umask ", b"severity local9.info", b"setenv A %u", b"keepalive", b"user nobody",
          b"group nogroup", b"user root.root"]
OPTION_TAILS = ["allow", "deny", "spawn echo %a %h %u %c %s %d %p %% %z", "twist echo %n", "aclexec false",
                "aclexec true", "banners /D/banners", "rfc931 " + "9" * 5000, "nice -" + "1" * 1900,
                "linger " + "7" * 300, "umask 0" + "7" * 500, "severity local0.notice", "setenv X %c" * 3,
                "keepalive", "twist " + "%h" * 700, "spawn " + "%%" * 1200, "rfc931 0", "nice +4", "Allow"]


def _address(rng: random.Random) -> str:
    return ".".join(str(rng.choice([0, 1, 10, 127, 192, 168, 255, rng.randrange(256)])) for _ in range(4))


NEAR = ["10.0.0.1", "10.0.0.5", "127.0.0.1", "192.168.0.1"]  # addresses block lists hold, and queries ask


def run_table(rng: random.Random, client: str) -> str:
    """Block-list shapes: stretches of plain rules (what pywrap.index compiles into runs when there are at
    least MIN_RUN of them) with the query's client among them often enough to match, and between them what
    breaks a run (another daemon, an option, a non-plain token, EXCEPT)."""
    daemon = rng.choice(["ALL", "ALL", "ALL", "sshd", "in.telnetd", "22", "SSHD", "ssh*"])
    near = [client.rpartition("@")[2], *NEAR]
    lines = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        for _ in range(rng.choice([15, 16, 16, 17, 18, 20, 24, 33, 40] * 3 + [100])):
            roll = rng.random()
            address = rng.choice(near) if rng.random() < 0.15 else _address(rng)
            if roll < 0.4:
                lines.append(f"{daemon}: {address}")
            elif roll < 0.55:
                lines.append(f"{daemon}: {address}/{rng.choice(MASKS)}")
            elif roll < 0.75:
                lines.append(f"{daemon}: {rng.choice(WORDS + near)}")
            elif roll < 0.95:
                tokens = [rng.choice(WORDS), address, f"{address}/{rng.choice(MASKS)}", rng.choice(near)]
                rng.shuffle(tokens)
                gap, separator = rng.choice([" ", "", "\t", ", "]), rng.choice([", ", " ", "\t", ","])
                lines.append(f"{daemon}:{gap}{separator.join(tokens[:rng.randrange(1, 5)])}")
            else:
                lines.append(f"# {address}")
        address = rng.choice(near)
        lines.append(rng.choice([
            f"{rng.choice(['sshd', 'ALL', 'in.ftpd'])}: {address}", f"{daemon}: {address} : {rng.choice(OPTION_TAILS)}",
            f"{daemon}: {rng.choice(['10.0.0.*', '[::1]', '0' + address, 'ALL', '@trusted', 'KNOWN'])}",
            f"{daemon}: {address} EXCEPT {rng.choice(near)}", f"{daemon}@{address}: ALL", f"{daemon}: {address}\\"]))
    if rng.random() < 0.5:
        lines.append(rng.choice(["ALL: ALL : allow", "ALL: ALL", "ALL: ALL EXCEPT LOCAL", "sshd: KNOWN"]))
    return "\n".join(lines) + "\n"


def _fixture(rng: random.Random) -> str:
    names = sorted(os.listdir(os.path.join(HERE, "fixtures")))
    with open(os.path.join(HERE, "fixtures", rng.choice(names)), "rb") as f:
        return f.read().decode("latin-1")


def _huge(rng: random.Random) -> bytes:
    return str(rng.randrange(1, 10)).encode() + rng.choice(b"0123456789x").to_bytes(1, "big") * rng.choice(
        [19, 40, 300, 1500, 2040, 5000])


def mutate(rng: random.Random, data: bytes, table: bool = True) -> bytes:
    """One mutation, anywhere (a line start, inside a token, at the end). A /file list (table=False) gets
    no 100,000-character line: it has no line limit, and every token of it is a name tcpdchk looks up."""
    at = rng.randrange(len(data) + 1)
    op = rng.randrange(15)
    if op == 0 and data:  # flip a byte to any byte
        at = min(at, len(data) - 1)
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
    if op == 1:
        return data[:at] + rng.choice(SPECIALS) + data[at:]
    if op == 2:
        return data[:at] + rng.choice(TOKENS) + rng.choice([b"", b" ", b",", b":"]) + data[at:]
    if op == 3 and data:  # delete a span
        return data[:at] + data[at + rng.randrange(1, 40):]
    if op == 4:  # a long number where numbers go: octets, masks, ports, option values
        digits = [i for i in range(len(data)) if data[i:i + 1].isdigit()]
        if digits:
            at = rng.choice(digits)
        return data[:at] + _huge(rng) + data[at:]
    if op == 5:  # a line of about the 2046-character limit, or far over it
        size = rng.choice([2044, 2045, 2046, 2047, 2048, 4095, 100_000 if table else 4096])
        fill = rng.choice([b"x", b"1", b" ", b"#", b"\\\n", b"a,"])
        return data[:at] + b"\n" + rng.choice([b"sshd: ", b"ALL:", b"#", b""]) + (fill * size)[:size] + b"\n" + data[at:]
    if op == 6:  # deep EXCEPT nesting, within a logical line or over continuations
        depth = rng.choice([2, 30, 180, 200, 400])
        piece = rng.choice([b"ALL EXCEPT ", b"EXCEPT ", b"10.0.0.1 EXCEPT ", b"except\\\n"])
        return data[:at] + b"\nsshd: " + piece * depth + b"10.0.0.1" + rng.choice([b"", b": allow", b": deny"]) + b"\n" + data[at:]
    if op == 7:  # continuations
        return data.replace(b" ", b" \\\n", rng.randrange(1, 4)) if b" " in data else data + b"\\\n"
    if op == 8:
        return data.replace(b"\n", b"\r\n")
    if op == 9 and data.endswith(b"\n"):
        return data.rstrip(b"\n")  # no final newline
    if op == 10:  # duplicate a line
        lines = data.split(b"\n")
        line = rng.choice(lines)
        lines.insert(rng.randrange(len(lines) + 1), line)
        return b"\n".join(lines)
    if op == 11:  # an option tail on a rule
        return data[:at] + b" : " + rng.choice(OPTION_TAILS).encode("latin-1") + data[at:]
    if op == 12:  # random bytes
        return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) + data[at:]
    if op == 13:  # an IPv6 pattern with brackets, scopes and masks
        v6 = rng.choice(["fe80::1%lo", "fe80::1%1", "::1", "::ffff:10.0.0.1", "2001:db8::", "fe80::%eth0", "::"])
        mask = rng.choice(["", "/64", "/128", "/0", "/129", "/" + "1" * 50, "/-1"])
        return data[:at] + f"[{v6}]{mask}".encode("latin-1") + data[at:]
    return data + b"\n"


def _query(rng: random.Random, given: list[str]) -> tuple[str, str]:
    if rng.random() < 0.5:
        daemon, client = given
    else:
        daemon = rng.choice(DAEMONS) + rng.choice(SERVERS)
        client = rng.choice(CLIENT_ADDRESSES if rng.random() < 0.6 else CLIENT_NAMES)
        client = rng.choice(USERS) + client
    return daemon, client


def inetd_conf(rng: random.Random) -> str:
    lines = ["telnet stream tcp nowait root /usr/sbin/tcpd in.telnetd",
             "ftp stream tcp nowait root /usr/sbin/tcpd /D/real/in.ftpd -l",
             "finger stream tcp nowait nobody /D/real/in.fingerd in.fingerd",
             "ssh stream tcp nowait root /D/real/sshd sshd",
             "rpc/1-2 dgram rpc/udp wait root /usr/sbin/tcpd rpc.x",
             "portmap stream tcp nowait root ?/usr/sbin/tcpd portmap",
             "incomplete stream tcp nowait root /usr/sbin/tcpd",
             "x" * rng.choice([10, 8190, 9000]), "# comment", "", "service sshd {", "includedir /D/missing"]
    return "\n".join(rng.choice(lines) for _ in range(rng.randrange(0, 6))) + "\n"


def numeric(address: str) -> bool:
    return bool(address) and set(address) <= set("0123456789abcdefABCDEF.:%lox")


def make_case(seed: int, index: int) -> dict:
    rng = random.Random(f"pywrap-fuzz:{seed}:{index}")
    base = generate(rng.getrandbits(32), 1)[0]
    daemon, client = _query(rng, base["args"])
    files = {name: text for name, text in base["files"].items() if name not in ("hosts.allow", "hosts.deny")}
    files.update(SUPPORT)
    tables = {name: base["files"].get(name) for name in ("hosts.allow", "hosts.deny")}
    shape = rng.random()
    if shape < 0.4:  # a block list in one or both tables, the generator's rules around it
        name = rng.choice(["hosts.allow", "hosts.deny"])
        tables[name] = (tables[name] or "") + run_table(rng, client)
        if rng.random() < 0.3:
            other = "hosts.deny" if name == "hosts.allow" else "hosts.allow"
            tables[other] = run_table(rng, client) + (tables[other] or "")
    elif shape < 0.46:
        tables[rng.choice(["hosts.allow", "hosts.deny"])] = _fixture(rng)
    mutations = 0 if shape < 0.3 else rng.choice([1, 1, 1, 2, 3, 5, 12])
    for _ in range(mutations):
        target = rng.choice(["hosts.allow", "hosts.deny", "hosts.deny", "hosts.allow", "list", "nested"])
        if target.startswith("hosts."):
            data = (tables[target] or "").encode("latin-1")
            tables[target] = mutate(rng, data).decode("latin-1")
        else:
            files[target] = mutate(rng, files[target].encode("latin-1"), table=False).decode("latin-1")
    for name, text in tables.items():
        if text is not None:
            files[name] = text
    dirs = ["real", "banners", "dir"]
    if rng.random() < 0.02:
        name = rng.choice(["hosts.allow", "hosts.deny", "list"])
        files.pop(name, None)
        dirs.append(name)  # a directory where a file is expected
    if rng.random() < 0.3:
        files["inetd.conf"] = inetd_conf(rng)
    if rng.random() < 0.1:
        daemon = mutate(rng, daemon.encode("latin-1")).decode("latin-1").replace("\0", "")
    if rng.random() < 0.1:
        client = mutate(rng, client.encode("latin-1")).decode("latin-1").replace("\0", "")
    with_conf = "inetd.conf" in files or rng.random() < 0.03
    tcpdmatch = ["tcpdmatch", "-d"] + (["-i", "/D/inetd.conf"] if with_conf else []) + [daemon, client]
    if rng.random() < 0.01:
        tcpdmatch = rng.choice([["tcpdmatch", "-d"], ["tcpdmatch", "-d", "-x", "a", "b"], ["tcpdmatch", "--help"],
                                ["tcpdmatch", "-d", "a", "b", "c"], ["tcpdmatch", "-i"]])
    # tcpdchk resolves every name and address of a rule: a block list's hundred rules mostly without DNS
    no_dns = 0.85 if shape < 0.4 else 0.5
    tcpdchk = ["tcpdchk", "-d"] + [flag for flag, p in (("-v", 0.5), ("-a", 0.5), ("--no-dns", no_dns), ("--json", 0.5))
                                   if rng.random() < p]
    if rng.random() < 0.3:
        tcpdchk += ["-i", rng.choice(["/D/inetd.conf", "/D/inetd.conf", "/D/missing", "/D/dir"])]
    user, _, address = client.rpartition("@")
    core_address = address if numeric(address) or rng.random() < 0.1 else rng.choice(CLIENT_ADDRESSES)
    if shape < 0.4 and rng.random() < 0.6:  # a block list: ask for what it holds, often enough to match
        core_address = rng.choice(NEAR + [f"::ffff:{a}" for a in NEAR] + ["010.0.0.1", "10.0.0.0"])
    return {
        "seed": seed, "index": index, "files": files, "dirs": dirs, "tcpdmatch": tcpdmatch, "tcpdchk": tcpdchk,
        "core": {"daemon": daemon.partition("@")[0], "address": core_address,
                 "name": rng.choice(LOOKED_UP_NAMES + [address]), "user": user or rng.choice(["unknown", "root", "alice"]),
                 "port": rng.choice([None, 22, 0, 23, 65535, 1234]), "server": rng.choice(["10.0.0.5", "unknown", "::1", "127.0.0.1"]),
                 "server_name": rng.choice(["localhost", "good.example.com", "unknown", "paranoid"])},
        "min_run": rng.choice([1, 2, 3, 16, 16]),
        "cache": rng.random() < 0.05,
        "libwrap": {"daemon": daemon.partition("@")[0], "address": address, "user": user or None,
                    "name": rng.choice([None, None, "good.example.com", "unknown", "x" * 300]),
                    "server": rng.choice([None, "127.0.0.1", "::1"]), "port": rng.choice([None, 22, 70000])},
    }


def minimal_case(files: dict[str, str], *, tcpdmatch: list[str] | None = None, tcpdchk: list[str] | None = None,
                 core: dict | None = None, libwrap: dict | None = None, min_run: int = 16, cache: bool = False,
                 dirs: list[str] | None = None) -> dict:
    """A hand-written case (a finding cut down to what shows it), with harmless defaults for the rest."""
    return {"seed": None, "index": None, "files": files, "dirs": dirs or ["real", "banners", "dir"],
            "tcpdmatch": tcpdmatch or ["tcpdmatch", "-d", "sshd", "10.0.0.1"], "tcpdchk": tcpdchk or ["tcpdchk", "-d"],
            "core": {"daemon": "sshd", "address": "10.0.0.1", "name": "unknown", "user": "unknown", "port": None,
                     "server": "unknown", "server_name": "unknown", **(core or {})},
            "min_run": min_run, "cache": cache,
            "libwrap": {"daemon": "sshd", "address": "10.0.0.1", "user": None, "name": None, "server": None,
                        "port": None, **(libwrap or {})}}


# --- one case, in-process --------------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """SIGALRM: the case ran past its time bound (a BaseException: no `except Exception` under test eats it)."""


class NetworkLeak(BaseException):
    """Something tried to reach a real name server or send a packet."""


class Failure(Exception):
    def __init__(self, kind: str, stage: str, message: str, trace: str = "") -> None:
        super().__init__(f"{kind} in {stage}: {message}")
        lines = trace.splitlines()
        if len(lines) > 90:  # a RecursionError's thousand frames: its start and where it ended are enough
            trace = "\n".join(lines[:30] + [f"  ... ({len(lines) - 80} lines left out)"] + lines[-50:]) + "\n"
        self.kind, self.stage, self.message, self.trace = kind, stage, message, trace

    def record(self) -> dict:
        return {"kind": self.kind, "stage": self.stage, "message": self.message, "traceback": self.trace}


def _fake_dns_answer(message, server, port, timeout):
    """The in-process name server: a few PTR and A answers, a timeout, a SERVFAIL, NXDOMAIN for the rest."""
    import dns.exception
    import dns.rdatatype

    question = message.question[0]
    qname = question.name.to_text().lower()
    rdtype = dns.rdatatype.to_text(question.rdtype)
    if "slow" in qname or qname.startswith("99.0.0.10."):
        raise dns.exception.Timeout()
    key = (qname, rdtype)
    if key not in _ANSWERS:  # the caller reads only the rcode and the answer section: one reply per question
        if len(_ANSWERS) > 10_000:
            _ANSWERS.clear()
        _ANSWERS[key] = _answer(message, qname, rdtype)
    return _ANSWERS[key]


_ANSWERS: dict = {}


def _answer(message, qname: str, rdtype: str):
    import dns.message
    import dns.rcode
    import dns.rrset

    reply = dns.message.make_response(message)
    if "servfail" in qname:
        reply.set_rcode(dns.rcode.SERVFAIL)
        return reply
    answers = {("77.0.0.10.in-addr.arpa.", "PTR"): "forged.example.com.",
               ("80.0.0.10.in-addr.arpa.", "PTR"): "dnsonly.example.com.",
               ("3.2.1.10.in-addr.arpa.", "PTR"): "1.2.3.4.",
               ("dnsonly.example.com.", "A"): "10.0.0.80",
               ("forged.example.com.", "A"): "10.0.0.78"}
    value = answers.get((qname, rdtype))
    if value is None:
        reply.set_rcode(dns.rcode.NXDOMAIN)
    else:
        reply.answer.append(dns.rrset.from_text(qname, 60, "IN", rdtype, value))
    return reply


def _netgroup(group: str, host: str) -> bool:
    return group == "trusted" and host.lower() in ("good.example.com", "10.0.0.1", "mixed.example.com")


def _audit(event: str, args: tuple) -> None:
    if event in ("socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg"):
        raise NetworkLeak(f"{event}{args!r}")
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == 53:
            raise NetworkLeak(f"{event}{address!r}: a name server asked for real")


class Worker:
    """Runs cases in this process, after isolating it (see the module's contract)."""

    def __init__(self, workdir: str, case_timeout: float = 10.0, rss_limit_mb: int = 256,
                 inject: str | None = None) -> None:
        self.workdir = workdir
        self.case_timeout = case_timeout
        self.rss_limit_mb = rss_limit_mb
        self.stats: dict[str, int] = {}  # what the cases did (tests/test_fuzz.py checks the fuzzer is not idle)
        self.written: dict[str, bytes | None] = {}  # what is in the work directory: files and directories
        self._isolate()
        if inject:
            inject_fault(inject)

    def path(self, text: str) -> str:
        return text.replace(PLACEHOLDER, self.workdir + "/")

    def _isolate(self) -> None:
        import dns.rdatatype  # noqa: F401  (loaded before the audit hook and the alarm: never mid-case)

        from pywrap import access, effects, grammar, inetconf, netgroup, patterns, resolver, settings

        with open(os.path.join(self.workdir, "hosts"), "w", encoding="latin-1") as f:
            f.write(HOSTS)
        with open(os.path.join(self.workdir, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        settings.HOSTS_FILE = os.path.join(self.workdir, "hosts")
        settings.INETD_CONF = os.path.join(self.workdir, "no-inetd.conf")
        settings.REAL_DAEMON_DIR = os.path.join(self.workdir, "real")
        settings.CACHE_DIR = ""
        settings.DNS_SERVERS = "127.0.0.1#1"  # should the fake below ever be bypassed: loopback, nothing listens
        inetconf.XINETD_CONF = os.path.join(self.workdir, "no-xinetd.conf")
        original_resolv = resolver.read_resolv_conf
        resolv_conf = os.path.join(self.workdir, "resolv.conf")
        resolver.read_resolv_conf = lambda path=None: original_resolv(resolv_conf)
        resolver.DnsClient._ask = staticmethod(_fake_dns_answer)
        patterns._innetgr = _netgroup
        netgroup.innetgr = _netgroup
        netgroup.netgroup_has_members = lambda group: group in ("trusted", "users")
        effects.run_shell = lambda command: (4242, 0 if "false" not in command else 256)
        effects.run_aclexec = lambda command, warn: "false" not in command
        self.fast_parse = access.parsed_table
        # One case parses its tables several times (indexed, scanned, by each front end): the grammar's
        # answer for a line (a pure function of text, file and line) is kept for the case, so only the
        # first parse of a line pays pyparsing's price.
        self.rules: dict = {}
        parse_rule = grammar.parse_rule

        def remembered(text, file, line):
            key = (text, file, line)
            found = self.rules.get(key)
            if found is None:
                found = self.rules[key] = parse_rule(text, file, line)
            return found
        grammar.parse_rule = remembered
        from pywrap import libwrap

        worker = self
        worker.library_trace = ""

        class TracingDiagnostics(libwrap.CollectingDiagnostics):
            """The library's diagnostics, keeping the traceback its catch-all would otherwise hide."""

            def emit(self, kind, text):
                if "internal error" in text:
                    worker.library_trace = traceback.format_exc()
                super().emit(kind, text)
        libwrap.CollectingDiagnostics = TracingDiagnostics
        sys.addaudithook(_audit)
        signal.signal(signal.SIGALRM, self._alarm)

    @staticmethod
    def _alarm(signum, frame) -> None:
        raise CaseTimeout()

    # the files of a case
    def write(self, case: dict) -> None:
        """The case's files and directories in the work directory, and nothing left of the last case's."""
        import shutil

        wanted = {name: self.path(text).encode("latin-1") for name, text in case["files"].items()}
        dirs = set(case["dirs"]) | {os.path.dirname(name) for name in wanted} - {""}
        for name in sorted(self.written, reverse=True):  # what the last case had and this one has not, or has otherwise
            target = os.path.join(self.workdir, name)
            if name in dirs and os.path.isdir(target):
                continue
            if name in wanted and self.written[name] == wanted[name]:
                continue
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
                for inside in [n for n in self.written if n.startswith(name + "/")]:
                    del self.written[inside]
            elif os.path.lexists(target):
                os.unlink(target)
            self.written.pop(name, None)
        for name in sorted(dirs):
            if name not in self.written:
                os.makedirs(os.path.join(self.workdir, name), exist_ok=True)
                self.written[name] = None
        for name, data in wanted.items():
            if name not in self.written:
                with open(os.path.join(self.workdir, name), "wb") as f:
                    f.write(data)
                self.written[name] = data
        if "real" in dirs and not os.path.exists(os.path.join(self.workdir, "real", "sshd")):
            for name in ("in.ftpd", "in.fingerd", "sshd", "in.telnetd"):
                with open(os.path.join(self.workdir, "real", name), "w"):
                    pass

    # the checks
    def check(self, case: dict) -> list[dict]:
        """The failures of one case (see the module's contract); [] when it passed."""

        failures: list[Failure] = []
        self.has_runs = True  # until the core has seen the tables: compare everything
        self.write(case)
        self.count("tables", sum(isinstance(case["files"].get(name), str) for name in ("hosts.allow", "hosts.deny")))
        here = os.getcwd()
        os.chdir(self.workdir)
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self.case_timeout)
        stage = "setup"
        try:
            for name, step in (("core", self.core), ("tcpdmatch", self.tcpdmatch), ("tcpdchk", self.tcpdchk),
                               ("libwrap", self.libwrap)):
                stage = name
                try:
                    step(case)
                except Failure as e:
                    failures.append(e)
        except CaseTimeout:
            failures.append(Failure("hang", stage, f"still running after {self.case_timeout:g} s",
                                    traceback.format_exc()))
        except MemoryError:
            failures.append(Failure("memory", stage, "MemoryError (the address-space limit)", traceback.format_exc()))
        except NetworkLeak as e:
            failures.append(Failure("network", stage, str(e), traceback.format_exc()))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            os.chdir(here)
            self._restore()
        took = int((time.monotonic() - started) * 1000)
        self.stats["peak case ms"] = max(self.stats.get("peak case ms", 0), took)
        peak = peak_rss_mib()
        self.stats["peak RSS MiB"] = max(self.stats.get("peak RSS MiB", 0), peak)
        if peak > self.rss_limit_mb:
            failures.append(Failure("memory", "case", f"peak RSS {peak} MiB, over the bound of {self.rss_limit_mb} MiB"))
        return [f.record() for f in failures]

    def _restore(self) -> None:
        from pywrap import access, index, settings

        access.parsed_table = self.fast_parse
        index.MIN_RUN = 16
        settings.CACHE_DIR = ""
        self.fast_parse.cache_clear()
        self.rules.clear()

    @staticmethod
    def _guard(stage: str, call):
        """call(); an exception (other than the bounds') is a Failure of this stage."""
        try:
            return call()
        except (CaseTimeout, MemoryError, NetworkLeak):
            raise
        except Exception as e:
            raise Failure("exception", stage, f"{type(e).__name__}: {e}"[:2000], traceback.format_exc()) from None

    def _parse_mode(self, min_run: int) -> None:
        """Tables are parsed again, with runs of at least `min_run` plain rules indexed: SCAN (no run is ever
        that long) is how tests/test_index.py makes the decision scan rule by rule."""
        from pywrap import index

        self.fast_parse.cache_clear()
        index.MIN_RUN = min_run

    # 1. the decision core: fast paths against the scan
    def count(self, what: str, really: bool | int = True) -> None:
        if really:
            self.stats[what] = self.stats.get(what, 0) + int(really)

    def _count_index(self, result) -> bool:
        """How much the index had to do in this case: tables with runs, verdicts from inside a run. True
        when the tables (as just parsed) have a run at all."""
        from pywrap import index

        items = []
        for name in ("hosts.allow", "hosts.deny"):
            data = self.written.get(name)
            if isinstance(data, bytes):
                items += [x for x in self.fast_parse(data, name) if isinstance(x, index.Run)]
        self.count("index: tables with runs", bool(items))
        rule = result[0][3] if len(result[0]) == 4 else None
        self.count("index: verdict from inside a run",
                   rule is not None and any(run.file == rule.file and rule.line in run.lines for run in items))
        return bool(items)

    def core(self, case: dict) -> None:
        from pywrap import access, settings

        results = {}
        indexed = f"index (MIN_RUN {case['min_run']})"
        self._parse_mode(case["min_run"])
        results[indexed] = self._guard(f"core, {indexed}", lambda: self.decide(case))
        self.has_runs = self._count_index(results[indexed])
        if case["cache"]:
            settings.CACHE_DIR = os.path.join(self.workdir, "cache")
            os.makedirs(settings.CACHE_DIR, mode=0o700, exist_ok=True)
            self._guard("core, cache store", lambda: self.decide(case))
            self.fast_parse.cache_clear()  # the next decision loads the tables from the cache
            parsed: list = []
            access.parsed_table = lambda data, path: parsed.append(path) or self.fast_parse(data, path)
            cached = self._guard("core, from the cache", lambda: self.decide(case))
            access.parsed_table = self.fast_parse
            settings.CACHE_DIR = ""
            self.count("cache loaded", not parsed and os.listdir(os.path.join(self.workdir, "cache")) != [])
            results["index from the cache"] = (cached[0], cached[1], [r for r in cached[2] if "cache" not in r[2]])
        if self.has_runs:  # else the tables parse to the same items either way: the scan is what ran
            self._parse_mode(SCAN)
            scan = self._guard("core, scan", lambda: self.decide(case))
        else:
            scan = results.pop(indexed)
        outcome = scan[0]
        self.count("core: " + ("ExpansionTooLong" if outcome[0] == "ExpansionTooLong" else
                              "failed" if outcome[2] else "granted" if outcome[0] else "denied"))
        self.count("core: name looked up", any(r[0] == "lookup" and r[2].startswith("name") for r in scan[2]))
        for mode, got in results.items():
            if got != scan:
                raise Failure("index-vs-scan", "core", f"{mode} and the scan disagree:\n{_diff(scan, got)}")

    def decide(self, case: dict) -> tuple:
        from pywrap import access, options
        from pywrap.diag import CollectingDiagnostics
        from pywrap.expand import ExpansionTooLong
        from pywrap.request import Endpoint, Request
        from pywrap.resolver import parse_numeric

        q = case["core"]

        class Diag(CollectingDiagnostics):
            def matched(self, file, line):
                self.records.append(("matched", (file, line), ""))

            def option(self, keyword, value):
                self.records.append(("option", self.context, f"{keyword} {value}"))

        calls: list = []

        class Effects(options.Effects):
            def __getattribute__(self, name):
                if name.startswith("_"):
                    return object.__getattribute__(self, name)

                def effect(*args):
                    calls.append((name, *(a.daemon if isinstance(a, Request) else a for a in args)))
                    return "false" not in str(args[0]) if name == "aclexec" else None
                return effect

        diag = Diag()

        def lookup(endpoint):
            diag.records.append(("lookup", diag.context, f"name of {endpoint.address}"))
            return q["name"]

        def user(request):
            diag.records.append(("lookup", diag.context, "user"))
            return q["user"]

        sockaddr = parse_numeric(q["address"]) or (2, bytes(4))
        client = Endpoint(q["address"], 4321, sockaddr, lookup)
        server_sockaddr = parse_numeric(q["server"])
        server = Endpoint(q["server"], q["port"], server_sockaddr, (lambda e: q["server_name"]) if server_sockaddr else None)
        request = Request(q["daemon"], client, server, 4242, user_lookup=user)
        try:
            verdict = access.decide(request, diag, Effects(), "hosts.allow", "hosts.deny")
            outcome = (verdict.granted, verdict.delegated, verdict.failed, verdict.rule)
        except ExpansionTooLong as e:
            outcome = ("ExpansionTooLong", str(e)[:200])
        return outcome, calls, diag.records

    # 2. tcpdmatch
    def tcpdmatch(self, case: dict) -> None:
        from pywrap.cli import tcpdmatch

        argv = [self.path(a) for a in case["tcpdmatch"]]
        outputs = {}
        modes = (("scan", SCAN), ("index", case["min_run"])) if self.has_runs else (("index", case["min_run"]),)
        for mode, min_run in modes:  # the index's parse last: it stays for libwrap
            self._parse_mode(min_run)
            outputs[mode] = self._guard(f"tcpdmatch, {mode}", lambda: _run_tool(tcpdmatch.run, argv))
        outputs.setdefault("scan", outputs["index"])
        rc, out, err = outputs["index"]
        self.count(f"tcpdmatch: exit {rc}")
        if rc not in TMATCH_STATUSES:
            raise Failure("exit-status", "tcpdmatch", f"exit status {rc!r}, not one of {sorted(TMATCH_STATUSES)}")
        operands = [a for a in argv[1:] if not a.startswith("-")]
        if rc == 0 and "--help" not in argv and b"access:   " not in out:
            raise Failure("no-verdict", "tcpdmatch", f"exit status 0 without an access: line; stdout {out[-500:]!r}")
        if outputs["scan"] != outputs["index"] and len(operands) >= 2:
            raise Failure("index-vs-scan", "tcpdmatch", f"with the index and with the scan:\n{_diff(outputs['scan'], outputs['index'])}")

    # 3. tcpdchk
    def tcpdchk(self, case: dict) -> None:
        from pywrap.cli import tcpdchk

        argv = [self.path(a) for a in case["tcpdchk"]]
        rc, out, err = self._guard("tcpdchk", lambda: _run_tool(tcpdchk.run, argv))
        self.count(f"tcpdchk: exit {rc}")
        if rc not in TCHK_STATUSES:
            raise Failure("exit-status", "tcpdchk", f"exit status {rc!r}, not one of {sorted(TCHK_STATUSES)}")
        if "--json" in argv and rc != 2 and "-i" not in argv:
            try:
                document = json.loads(out.decode("latin-1"))
                assert {"rules", "findings"} <= set(document)
            except (ValueError, AssertionError) as e:
                raise Failure("bad-json", "tcpdchk", f"--json printed no JSON document ({e}): {out[-300:]!r}") from None

    # 4. the library
    def libwrap(self, case: dict) -> None:
        from pywrap.libwrap import AccessRequest, hosts_ctl

        q = case["libwrap"]
        tables = ("hosts.allow", "hosts.deny")  # as the core and tcpdmatch name them: their parse is reused
        granted = self._guard("libwrap hosts_ctl", lambda: hosts_ctl(q["daemon"], q["name"], q["address"], q["user"], tables=tables))
        if not isinstance(granted, bool):
            raise Failure("bad-result", "libwrap", f"hosts_ctl returned {granted!r}")
        self.count(f"hosts_ctl: {'granted' if granted else 'denied'}")

        def verdict():
            access = AccessRequest.from_endpoints(q["daemon"], q["address"] or None, q["port"], q["server"],
                                                  q["port"], q["name"], q["user"])
            return access.verdict(send_banners=False, tables=tables)

        self.library_trace = ""
        result = self._guard("libwrap verdict", verdict)
        internal = [text for kind, _, text in result.messages if "internal error" in text]
        if internal:
            raise Failure("exception", "libwrap", f"the library's catch-all denied: {internal[0]}"[:2000],
                          self.library_trace)


def _run_tool(run, argv: list[str]) -> tuple:
    import io

    out, err = io.BytesIO(), io.BytesIO()
    rc = run(argv, out, err)
    return rc, out.getvalue(), err.getvalue()


def _diff(want, got) -> str:
    import difflib
    import pprint

    a = pprint.pformat(want, width=120).splitlines()
    b = pprint.pformat(got, width=120).splitlines()
    return "\n".join(list(difflib.unified_diff(a, b, "scan", "fast path", lineterm="", n=2))[:80])


# --- faults for the engine's self-test (tests/test_fuzz.py): a fuzzer that cannot fail proves nothing -----------

FAULTS = ("index-wrong-line", "tcpdchk-crash", "hang", "hang-in-c", "memory", "exit-status", "dns", "crash")


def inject_fault(name: str) -> None:
    from pywrap import access, index, options, rulecheck, settings
    from pywrap.cli import tcpdmatch

    if name == "index-wrong-line":  # the index answers the rule after the right one
        first_match = index.Run.first_match

        def wrong(self, client, evaluate):
            found = first_match(self, client, evaluate)
            return found + 1 if found is not None and found + 1 < len(self) else found
        index.Run.first_match = wrong
    elif name == "tcpdchk-crash":
        client_list = rulecheck.RuleChecker.client_list

        def crash(self, text):
            if "EXCEPT" in text.upper():
                raise IndexError("injected")
            return client_list(self, text)
        rulecheck.RuleChecker.client_list = crash
    elif name in ("hang", "hang-in-c"):  # a decision for a client on 127.x never ends
        decide = access.decide

        def hang(request, *args, **kwargs):
            if request.client.address.startswith("127."):
                if name == "hang-in-c":  # what SIGALRM cannot interrupt: only the supervisor ends it
                    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                while True:
                    time.sleep(0.01)
            return decide(request, *args, **kwargs)
        access.decide = hang
        tcpdmatch.decide = hang
    elif name == "memory":  # the first rule with options that matches keeps 400 MiB
        kept = []
        run_options = options.run_options

        def hungry(*args, **kwargs):
            if not kept:
                kept.append(bytearray(400 << 20))
                kept[0][::4096] = b"\1" * len(range(0, 400 << 20, 4096))
            return run_options(*args, **kwargs)
        options.run_options = hungry
    elif name == "exit-status":
        run = tcpdmatch.TcpdMatch.run
        tcpdmatch.TcpdMatch.run = lambda self, *args: (run(self, *args), 3)[1]
    elif name == "crash":  # the worker dies of a signal (a crash in C code) in a case with a name
        run = tcpdmatch.TcpdMatch.run

        def die(self, use_cwd, inet_conf, operands):
            if "example" in operands[-1]:
                os.kill(os.getpid(), signal.SIGSEGV)
            return run(self, use_cwd, inet_conf, operands)
        tcpdmatch.TcpdMatch.run = die
    elif name == "dns":  # a name server asked for real: the audit hook must stop it
        settings.DNS_SERVERS = "127.0.0.1#53"
        from pywrap import resolver

        resolver.DnsClient._ask = staticmethod(_real_ask)
    else:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")


def _real_ask(message, server, port, timeout):
    import socket as socket_module

    with socket_module.socket(socket_module.AF_INET, socket_module.SOCK_DGRAM) as sock:
        sock.connect((server, port))
        sock.send(message.to_wire())
    raise OSError("sent")


# --- the worker process -------------------------------------------------------------------------------------

def peak_rss_mib() -> int:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that across exec, so a worker
    started (vfork + exec) by a big pytest process would begin with pytest's peak and fail every case."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return 0


def worker_main(argv: list[str]) -> int:
    """python tests/fuzzing.py --worker SEED FIRST STEP LAST WORKDIR TIMEOUT RSS_MB AS_MB [FAULT]
    Reports on stdout, one line each: `S index` before a case, `F json` per failure, `D count` at the end."""
    import resource

    seed, first, step, last = (int(x) for x in argv[:4])
    workdir, timeout, rss_mb, as_mb = argv[4], float(argv[5]), int(argv[6]), int(argv[7])
    fault = argv[8] if len(argv) > 8 else None
    if as_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (as_mb << 20, as_mb << 20))
    worker = Worker(workdir, timeout, rss_mb, fault)
    stop: list = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: stop.append(signum))  # time is up: end after this case
    out = sys.stdout
    index, done = first, 0
    while (last < 0 or index < last) and not stop:
        out.write(f"S {index}\n")
        out.flush()
        try:
            case = make_case(seed, index)
            failures = worker.check(case)
        except (CaseTimeout, MemoryError) as e:  # outside a case's own guard: generation or the file writes
            case = {"seed": seed, "index": index}
            failures = [{"kind": "harness", "stage": "setup", "message": repr(e), "traceback": traceback.format_exc()}]
        for failure in failures:
            out.write("F " + json.dumps({"seed": seed, "index": index, "failure": failure, "case": case}) + "\n")
        if any(f["kind"] == "memory" for f in failures):
            out.write(f"D {done + 1} {json.dumps(worker.stats)}\n")
            out.flush()
            return 3  # its peak RSS stays high: the supervisor starts a fresh worker after this case
        done += 1
        index += step
    out.write(f"D {done} {json.dumps(worker.stats)}\n")
    out.flush()
    return 0


# --- the supervisor -------------------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.cases = 0
        self.elapsed = 0.0
        self.failures: list[dict] = []  # {"seed", "index", "failure": {...}, "case": {...}, "saved": path}
        self.signatures: dict[str, int] = {}
        self.stats: dict[str, int] = {}  # what the cases did, summed over the workers that finished

    @property
    def rate(self) -> float:
        return self.cases / self.elapsed if self.elapsed else 0.0


def signature(failure: dict) -> str:
    """What tells one defect from another: kind, stage and the innermost pywrap frame of the traceback."""
    f = failure["failure"]
    where = ""
    for line in f.get("traceback", "").splitlines():
        if "/pywrap/" in line and line.strip().startswith("File"):
            where = line.strip().split("/pywrap/", 1)[1]
    stage = f["stage"].split(",")[0]
    first = f["message"].splitlines()[0] if f["message"] and f["kind"] != "memory" else ""
    if first.startswith("RecursionError"):  # where the stack ran out says nothing: the loop does
        where = ""
    return f"{f['kind']} | {stage} | {where or first[:80]}"


def save(failure: dict, out: str) -> str:
    """The failure's input and what went wrong, in a directory of its own under `out`."""
    f = failure["failure"]
    name = f"{f['kind']}-{f['stage'].split(',')[0].replace(' ', '_')}-seed{failure['seed']}-case{failure['index']}"
    path = os.path.join(out, name)
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(out, f"{name}-{n}")
    os.makedirs(path)
    case = failure["case"]
    with open(os.path.join(path, "case.json"), "w", encoding="utf-8") as fh:
        json.dump(case, fh, indent=1, ensure_ascii=True)
        fh.write("\n")
    for file_name, text in case.get("files", {}).items():
        target = os.path.join(path, "files", file_name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(text.encode("latin-1"))
    with open(os.path.join(path, "failure.txt"), "w", encoding="utf-8") as fh:
        fh.write(describe(failure))
    return path


def describe(failure: dict, limit: int = 600) -> str:
    """The failure and its input, readable: files shown with repr() (each cut to `limit` characters)."""
    f, case = failure["failure"], failure["case"]
    where = "a saved case" if failure["seed"] is None else f"seed {failure['seed']}, case {failure['index']}"
    lines = [f"{f['kind']} in {f['stage']} ({where})", f["message"]]
    if f.get("traceback"):
        lines.append(f["traceback"].rstrip())
    if "files" in case:
        lines.append("input (/D/ is the work directory):")
        for name in ("hosts.allow", "hosts.deny"):
            if name in case["files"]:
                text = case["files"][name]
                shown = repr(text[:limit]) + (f" ... ({len(text)} characters)" if len(text) > limit else "")
                lines.append(f"  {name}: {shown}")
        lines.append(f"  tcpdmatch: {_cut(case['tcpdmatch'][1:], limit)}")
        lines.append(f"  tcpdchk:   {_cut(case['tcpdchk'][1:], limit)}")
        lines.append(f"  core:      {_cut(case['core'], limit)}, MIN_RUN {case['min_run']}, cache {case['cache']}")
        lines.append(f"  libwrap:   {_cut(case['libwrap'], limit)}")
    if failure["seed"] is not None:
        lines.append(f"replay: tools/fuzz.py --seed {failure['seed']} --case {failure['index']}"
                     "   (or --replay on the saved directory)")
    else:
        lines.append("replay: tools/fuzz.py --replay on the saved directory")
    return "\n".join(lines) + "\n"


def _cut(value, limit: int) -> str:
    """repr(value) with each string in it cut to `limit` characters."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}...({len(value)} characters)"
    if isinstance(value, list):
        return "[" + ", ".join(_cut(v, limit) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_cut(v, limit)}" for k, v in value.items()) + "}"
    return repr(value)


class _Child:
    def __init__(self, seed, first, step, last, workdir, options, log_path) -> None:
        self.first, self.step, self.last = first, step, last
        self.current: int | None = None
        self.finished = False
        self.buffer = b""
        self.heard = time.monotonic()
        args = [sys.executable, os.path.abspath(__file__), "--worker", str(seed), str(first), str(step), str(last),
                workdir, str(options["case_timeout"]), str(options["rss_mb"]), str(options["as_mb"])]
        if options.get("inject"):
            args.append(options["inject"])
        env = dict(os.environ, PYTHONPATH=CHECKOUT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONHASHSEED="0")
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
                                     env=env)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


def fuzz(seed: int, *, count: int | None = None, seconds: float | None = None, out: str, workers: int = 2,
         case_timeout: float = 10.0, rss_mb: int = 256, as_mb: int = 2048, inject: str | None = None,
         first: int = 0, progress=None, echo=None, keep: int = 5, watchdog: float | None = None) -> Report:
    """Cases first .. first+count-1 of `seed` (or as many as fit in `seconds`) through `workers` worker
    processes. Every failure is saved under `out` (at most `keep` per signature; the rest are counted) and
    given to `echo` (a callable taking text) when there is one."""
    import selectors
    import shutil
    import tempfile

    os.makedirs(out, exist_ok=True)
    options = {"case_timeout": case_timeout, "rss_mb": rss_mb, "as_mb": as_mb, "inject": inject}
    if watchdog is None:  # no word from a worker for this long: it hangs where SIGALRM cannot reach
        watchdog = case_timeout * 2 + 15
    report = Report()
    start = time.monotonic()
    deadline = None if seconds is None else start + seconds
    last = -1 if count is None else first + count
    roots = []
    children: dict[int, _Child] = {}
    sel = selectors.DefaultSelector()

    def spawn(k: int, begin: int) -> None:
        if (last >= 0 and begin >= last) or (deadline is not None and time.monotonic() >= deadline):
            return
        root = tempfile.mkdtemp(prefix="pwfuzz", dir="/tmp")  # fixed length: line lengths replay alike
        roots.append(root)
        child = _Child(seed, begin, workers, last, root, options, os.path.join(out, f"worker{k}.log"))
        children[k] = child
        sel.register(child.proc.stdout, selectors.EVENT_READ, k)

    def lost(k: int, kind: str, message: str) -> None:
        child = children.pop(k)
        sel.unregister(child.proc.stdout)
        child.stop()
        index = child.current
        if index is None:
            index = child.first
        tail = ""
        try:
            with open(os.path.join(out, f"worker{k}.log"), "rb") as fh:
                tail = fh.read()[-3000:].decode("latin-1")
        except OSError:
            pass
        record({"seed": seed, "index": index, "case": make_case(seed, index),
                "failure": {"kind": kind, "stage": "worker", "message": message, "traceback": tail}})
        report.cases += 1
        spawn(k, index + workers)

    def record(failure: dict) -> None:
        sig = signature(failure)
        report.signatures[sig] = report.signatures.get(sig, 0) + 1
        if report.signatures[sig] <= keep:
            failure["saved"] = save(failure, out)
            if echo:
                echo(describe(failure) + f"saved: {failure['saved']}\n")
        report.failures.append(failure)

    try:
        for k in range(workers):
            spawn(k, first + k)
        last_progress = time.monotonic()
        stopping = None
        while children:
            now = time.monotonic()
            if deadline is not None and now >= deadline and stopping is None:
                stopping = now + case_timeout + 5  # each worker ends the case it is in and reports
                for child in children.values():
                    child.proc.send_signal(signal.SIGUSR1)
            if stopping is not None and now >= stopping:
                break
            for key, _ in sel.select(timeout=1.0):
                k = key.data
                child = children[k]
                chunk = os.read(child.proc.stdout.fileno(), 1 << 16)
                child.heard = time.monotonic()
                if not chunk:
                    child.proc.wait()
                    if child.finished or stopping is not None:  # (a worker still starting dies of SIGUSR1)
                        sel.unregister(child.proc.stdout)
                        child.stop()
                        children.pop(k)
                    else:
                        lost(k, "crash", f"the worker died (exit status {child.proc.returncode}) in this case")
                    continue
                child.buffer += chunk
                *lines, child.buffer = child.buffer.split(b"\n")
                for line in lines:
                    tag, _, rest = line.decode("utf-8").partition(" ")
                    if tag == "S":
                        if child.current is not None:
                            report.cases += 1
                        child.current = int(rest)
                    elif tag == "F":
                        record(json.loads(rest))
                    elif tag == "D":
                        if child.current is not None:
                            report.cases += 1
                        for what, n in json.loads(rest.partition(" ")[2] or "{}").items():
                            combine = max if what.startswith("peak") else int.__add__
                            report.stats[what] = combine(report.stats.get(what, 0), n)
                        child.finished = True
                        if child.proc.wait() == 3:  # restarted after a memory failure
                            nxt = child.current + workers
                            sel.unregister(child.proc.stdout)
                            child.stop()
                            children.pop(k)
                            spawn(k, nxt)
                        break
            for k, child in list(children.items()):
                if time.monotonic() - child.heard > watchdog and stopping is None:
                    lost(k, "hang", f"no word from the worker for {watchdog:g} s (a hang SIGALRM cannot end)")
            if progress and time.monotonic() - last_progress >= 10:
                last_progress = time.monotonic()
                elapsed = last_progress - start
                progress(f"{report.cases} cases, {report.cases / elapsed:.0f} cases/s, "
                         f"{len(report.failures)} failures")
    finally:
        for child in children.values():
            if child.current is not None and not child.finished:
                report.cases += 1  # the case it was in when the time was up counts as run (it had not failed)
            child.stop()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
    report.elapsed = time.monotonic() - start
    return report


def load_case(path: str) -> dict:
    """A saved case: its directory, or its case.json. ValueError for anything else."""
    try:
        with open(os.path.join(path, "case.json") if os.path.isdir(path) else path, encoding="utf-8") as fh:
            case = json.load(fh)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a saved case ({e})") from None
    if not isinstance(case, dict) or "files" not in case:
        raise ValueError(f"{path}: not a saved case")
    return case


_replayer: list = []  # the one Worker of a replaying process (a process is isolated once)


def replay(source, case_timeout: float = 10.0, inject: str | None = None) -> list[dict]:
    """Run one case in this process, isolated as a worker is (for good: run it in a process of its own, as
    tools/fuzz.py does): a saved directory, its case.json, or a case dict."""
    import atexit
    import shutil
    import tempfile

    if isinstance(source, str):
        source = load_case(source)
    if not _replayer:
        workdir = tempfile.mkdtemp(prefix="pwfuzz", dir="/tmp")
        atexit.register(shutil.rmtree, workdir, True)
        _replayer.append(Worker(workdir, case_timeout, inject=inject))
    return _replayer[0].check(source)


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    sys.exit(worker_main(sys.argv[2:]))
