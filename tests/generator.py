"""Seeded random rule files and queries for the differential suite.

`generate(seed, count)` returns `count` cases (files + tcpdmatch arguments) built from a vocabulary that
covers every pattern form, operator, option and line-level quirk of the language, mixed with junk. The same
seed always gives the same cases, so a disagreement can be replayed. Options that Debian's tools really
execute in their own process (`user`, `group`) and `%p` (a process id) are left out: they are pinned by
their own tests (README, differences table).
"""

from __future__ import annotations

import random

DAEMONS = ["sshd", "in.telnetd", "ALL", "KNOWN", ".telnetd", "in.", "ssh*", "s?hd", "22", "0", "sshd@127.0.0.1",
           "sshd@UNKNOWN", "ALL@localhost", "sshd@10.0.0.0/8", "ALL@[::1]", "portmap", "SSHD", "sshd@KNOWN",
           "tel*@ALL", "@trusted", "/D/list", "LOCAL", "in.telnetd@.example.com", "+22", "022", "65536", "-0"]

CLIENT_ATOMS = [
    "ALL", "LOCAL", "KNOWN", "UNKNOWN", "PARANOID", "10.0.0.1", "10.0.0.5", "10.0.0.12", "10.0.0.0/8",
    "10.0.0.0/255.0.0.0", "10.0.0.1/8", "10.0.0.0/8x", "10.0.0/8", "0.0.0.0/0.0.0.0", "0.0.0.0/0",
    "10.0.0.1/255.255.255.255", "10.0.0.1/32", "010.0.0.0/8", "0x0a.0.0.0/8", ".1", "10.0.", "10.0", "10.0.0.*",
    "10.0.0.?", "un*", "*", "?", "[::1]", "[0:0:0:0:0:0:0:1]", "[2001:db8::1]/32", "[2001:db8::]/16", "[::]/0",
    "[::ffff:10.0.0.1]", "[::ffff:10.0.0.0]/104", "2001:db8::5", "good.example.com", ".example.com", "good.",
    ".EXAMPLE.COM", "good", "x.example.com", "y.example.com", "z.example.com", "nodots", "multi.example.com",
    "localhost", "six.example.com", "mixed.example.com", "*.example.com", "good.example.com.", "@trusted",
    "@users", "@nosuchgroup", "/D/list", "/D/nested", "/D/missing", "/D", "root@ALL", "KNOWN@ALL",
    "r*t@ALL", "UNKNOWN@ALL", "bob@10.0.0.0/8", "@trusted@ALL", "alice@@trusted", "ALL@ALL", "[", "]", "[x",
    "x]", "#", "note", "FAIL", "10.0.0.1.", "127.0.0.1", "127.1", "8.0.0.0/8", "10.1.0.0/16",
    "10.0.0.5/255.255.255.0", "10.0.0.0/24", "::ffff:10.0.0.1", "paranoid", "unknown",
]

OPTIONS = [
    "allow", "deny", "DENY", "spawn echo %a %n %h %c %s %u %d %r %R %A %H %N %%", "spawn echo %x %",
    "twist echo hi %a", "aclexec true", "severity local0.notice", "severity crit", "severity warn",
    "severity bogus.info", "rfc931", "rfc931 5", "rfc931 x", "rfc931 0", "nice", "nice 5", "nice x",
    "umask 077", "umask 888", "umask", "setenv FOO bar baz", "setenv A=B c", "keepalive", "keepalive 1",
    "linger 5", "linger x", "linger -1", "banners /D/banners", "banners /D/nodir", "bogus", "", " ",
    "spawn", "allow 1", "spawn=echo x", "severity = = info", "spawn echo a\\:b", "Allow",
]

CLIENTS = ["10.0.0.1", "10.0.0.5", "10.1.2.3", "10.2.2.3", "8.1.2.3", "127.0.0.1", "::1", "2001:db8::5",
           "::ffff:10.0.0.1", "good", "good.example.com", "z.example.com", "nodots", "multi.example.com",
           "localhost", "six.example.com", "mixed.example.com", "unknown", "paranoid", "PARANOID", "10.0.0.12",
           "x.example.com", "127.1", "10.0.0.255"]
USERS = ["", "root@", "bob@", "alice@", "@", "a b@"]
QUERY_DAEMONS = ["sshd", "in.telnetd", "sshd@127.0.0.1", "22", "sshd@localhost", "portmap", "SSHD",
                 "/usr/sbin/sshd", "in.telnetd@10.0.0.5", "sshd@unknown"]

SUPPORT_FILES = {
    "list": "10.0.0.5\n# comment 10.0.0.1\n.example.com\n",
    "nested": "/D/list 2001:db8::5\n10.1.0.0/16\n",
    "banners/sshd": "hello %a from %d [x]\nunbalanced [ line\nend\n",
    "banners/in.telnetd": "\0\0telnet %h\n",
}


def _plist(rng: random.Random, atoms: list[str], max_len: int = 3) -> str:
    parts = [rng.choice(atoms) for _ in range(rng.randint(0 if rng.random() < 0.05 else 1, max_len))]
    if rng.random() < 0.25:
        parts.append(rng.choice(["EXCEPT", "except"]))
        parts.extend(rng.choice(atoms) for _ in range(rng.randint(0, 2)))
        if rng.random() < 0.3:
            parts.append("EXCEPT")
            parts.append(rng.choice(atoms))
    sep = rng.choice([" ", ", ", ",", "\t", " , "])
    return sep.join(parts)


def _rule(rng: random.Random, query: list[str]) -> str:
    # a third of the atoms name the query itself, so that many rules match and options run
    daemon, client = query[0].partition("@")[0], query[1].rpartition("@")[2]
    daemons = _plist(rng, DAEMONS + [daemon] * 12 + ["ALL"] * 4, 2)
    clients = _plist(rng, CLIENT_ATOMS + [client] * 20 + ["ALL"] * 6, 4)
    roll = rng.random()
    if roll < 0.55:
        line = f"{daemons}: {clients}"
    elif roll < 0.95:
        opts = [rng.choice(OPTIONS) for _ in range(rng.randint(1, 3))]
        line = f"{daemons}: {clients}: " + " : ".join(opts)
    else:
        line = f"{daemons} {clients}"  # missing separator
    if rng.random() < 0.05 and " " in line:
        cut = line.index(" ")
        line = line[:cut] + " \\\n" + line[cut + 1:]  # continuation
    return line


def _table(rng: random.Random, query: list[str]) -> str | None:
    if rng.random() < 0.1:
        return None
    lines = []
    for _ in range(rng.randint(0, 5)):
        roll = rng.random()
        if roll < 0.08:
            lines.append("# a comment" + (" \\" if rng.random() < 0.2 else ""))
        elif roll < 0.12:
            lines.append(rng.choice(["", "   ", "\t"]))
        else:
            lines.append(_rule(rng, query))
    ending = "\r\n" if rng.random() < 0.05 else "\n"
    text = ending.join(lines) + (ending if lines else "")
    if text and rng.random() < 0.03:
        text = text.rstrip("\n")  # last line without newline
    if rng.random() < 0.02:
        text = text + "sshd: " + "x" * 2100 + "\n"
    return text


def generate(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        files: dict[str, str] = dict(SUPPORT_FILES)
        args = [rng.choice(QUERY_DAEMONS), rng.choice(USERS) + rng.choice(CLIENTS)]
        for name in ("hosts.allow", "hosts.deny"):
            text = _table(rng, args)
            if text is not None:
                files[name] = text
        cases.append({"files": files, "args": args})
    return cases
