"""Issue 13, item 1: the parsed-table cache holds only what was read, under the identity of what was read.

A table changed in place between the read and the store (fail2ban's `printf >>`, DenyHosts' append, a
same-size rewrite within one timestamp tick) must never leave its old rules in the cache under its new
identity. Every race here is made certain by a hook, never hoped for:
- `access.parsed_table` runs after the table was read and before its parse is stored (in the code before
  this fix too): a wrapper edits the table there;
- `tablecache._read_all` is the read itself: a wrapper edits the table just after the bytes were read;
- a file system whose timestamps are coarse (a change within the tick of the last one leaves mtime and
  ctime as they were) is played by a fake os.fstat that shows frozen mtime and ctime for the table's inode,
  and the time of the read by a fake clock, `tablecache.clock_ns`.
Verdicts are checked in process (hosts_ctl, access.decide) and by processes that read the stored cache:
the installed tcpdmatch, and tcpd on a real loopback connection (tests/cachens.py, private namespace).
No timing is assumed anywhere.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from test_tablecache_users import DAEMON, ROOT, ROOT_IDS, Setup, connect, refused, warnings

from pywrap import access, hosts_ctl, settings, tablecache
from pywrap.diag import CollectingDiagnostics
from pywrap.options import DryRun
from pywrap.request import Endpoint, Request

GRAMMAR = b"in.fingerd: 10.9.9.9 EXCEPT 10.9.9.8\n"  # the one grammar line: 127.0.0.1 is granted
BAN = b"ALL: 127.0.0.1\n"  # what fail2ban appends
SAME_SIZE = b"ALL: 127.0.0.1 EXCEPT 10.9.9.8".ljust(len(GRAMMAR) - 1) + b"\n"  # denies 127.0.0.1
assert len(SAME_SIZE) == len(GRAMMAR)
SETTLED = 10 * 10**9  # a time far enough after a change for tablecache to call the file settled


@pytest.fixture(scope="module")
def installed():
    """`make install` into a temporary prefix (as test_tablecache_users has it): tables in PREFIX/etc,
    CACHE_DIR=PREFIX/cache, no pause after a refusal."""
    prefix = tempfile.mkdtemp(prefix="pywrap-cacherace-")
    atexit.register(shutil.rmtree, prefix, True)
    os.chmod(prefix, 0o755)
    for sub in ("etc", "libexec"):
        os.mkdir(os.path.join(prefix, sub), 0o755)
    daemon = os.path.join(prefix, "libexec", "in.fingerd")
    with open(daemon, "w") as f:
        f.write(DAEMON)
    os.chmod(daemon, 0o755)
    proc = subprocess.run(["make", "-C", ROOT, "install", f"PREFIX={prefix}", f"REAL_DAEMON_DIR={prefix}/libexec",
                           f"HOSTS_ALLOW={prefix}/etc/hosts.allow", f"HOSTS_DENY={prefix}/etc/hosts.deny",
                           "REFUSE_PAUSE=0", f"CACHE_DIR={prefix}/cache"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return prefix


@pytest.fixture
def world(installed, monkeypatch):
    """The installed copy with an empty cache, and this process using the same CACHE_DIR and tables."""
    s = Setup(installed)
    shutil.rmtree(s.cache, ignore_errors=True)
    os.mkdir(s.cache, 0o755)
    os.mkdir(s.users)
    os.chmod(s.users, 0o1733)
    s.tables(None, GRAMMAR.decode())
    monkeypatch.setattr(settings, "CACHE_DIR", s.cache)
    access.parsed_table.cache_clear()
    tablecache._said.clear()
    return s


# what decides -------------------------------------------------------------------------------------------
def in_process(s: Setup, address: str = "127.0.0.1") -> dict[str, bool]:
    """Granted or not, by the library (hosts_ctl) and by access.decide, each its own load of the tables."""
    diag = CollectingDiagnostics()
    verdict = access.decide(Request("in.fingerd", Endpoint(address), Endpoint()), diag, DryRun(), s.allow, s.deny)
    return {"hosts_ctl": hosts_ctl("in.fingerd", client_addr=address, tables=(s.allow, s.deny)),
            "decide": verdict.granted}


def racing_decision(s: Setup) -> bool:
    """One load of each table, by the library: the one a hook races with."""
    return hosts_ctl("in.fingerd", client_addr="127.0.0.1", tables=(s.allow, s.deny))


def tcpdmatch(s: Setup, *fake_stat: int) -> subprocess.CompletedProcess:
    """The installed tcpdmatch (its tables and CACHE_DIR baked in); with `fake_stat` (dev, ino, mtime_ns,
    ctime_ns), run under the same frozen-timestamp fstat as this process."""
    script = os.path.join(s.prefix, "sbin", "tcpdmatch")
    if not fake_stat:
        return subprocess.run([script, "in.fingerd", "127.0.0.1"], capture_output=True, text=True, timeout=60)
    with open(script) as f:
        interpreter = f.readline()[2:].split()[0]  # the one its #! line names: the cache is per Python version
    return subprocess.run([interpreter, "-I", "-S", "-c", FROZEN_BOOT, *map(str, fake_stat), script, "in.fingerd",
                           "127.0.0.1"], capture_output=True, text=True, timeout=60)


def access_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("access:")][0]


# the hooks ------------------------------------------------------------------------------------------------
def edit_before_store(monkeypatch, edit) -> list:
    """Run `edit()` once, inside the first parse: after the table was read, before the result is stored."""
    real = access.parsed_table.__wrapped__
    done: list = []

    def parse(data, path):
        if not done:
            done.append(data)
            edit()
        return real(data, path)

    monkeypatch.setattr(access, "parsed_table", parse)
    return done


def append(path: str, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # fail2ban's `printf ... >>`
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def rewrite_in_place(path: str, data: bytes, keep_mtime: bool = False) -> None:
    before = os.stat(path)
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


class FrozenStat:
    """A stat result whose mtime and ctime are the frozen ones (everything else: the real file's)."""

    def __init__(self, real, mtime_ns: int, ctime_ns: int) -> None:
        self._real, self.st_mtime_ns, self.st_ctime_ns = real, mtime_ns, ctime_ns
        self.st_mtime, self.st_ctime = mtime_ns / 1e9, ctime_ns / 1e9

    def __getattr__(self, name):
        return getattr(self._real, name)


class CoarseClock:
    """os.fstat of a file system with coarse timestamps: the inodes in `frozen` show the mtime and ctime
    given there, whatever was written since (a change within the same tick)."""

    def __init__(self) -> None:
        self.real = os.fstat
        self.frozen: dict[tuple[int, int], tuple[int, int]] = {}

    def __call__(self, fd):
        st = self.real(fd)
        times = self.frozen.get((st.st_dev, st.st_ino))
        return st if times is None else FrozenStat(st, *times)


FROZEN_BOOT = """
import os, sys
dev, ino, mtime, ctime = map(int, sys.argv[1:5])
real = os.fstat
class FrozenStat:
    def __init__(self, st):
        self._real, self.st_mtime_ns, self.st_ctime_ns = st, mtime, ctime
        self.st_mtime, self.st_ctime = mtime / 1e9, ctime / 1e9
    def __getattr__(self, name):
        return getattr(self._real, name)
def fstat(fd):
    st = real(fd)
    return FrozenStat(st) if (st.st_dev, st.st_ino) == (dev, ino) else st
os.fstat = fstat
script = sys.argv[5]
sys.argv = sys.argv[5:]
with open(script) as f:
    code = compile(f.read(), script, "exec")
exec(code, {"__name__": "__main__"})
"""


# the cases -----------------------------------------------------------------------------------------
def test_a_ban_appended_between_read_and_store_is_seen_by_every_later_decision(world, monkeypatch):
    """The issue's repro: a connection reads the one grammar line, fail2ban appends `ALL: 127.0.0.1`
    before its parse is stored; from then on 127.0.0.1 is denied, by tcpd, tcpdmatch and the library."""
    done = edit_before_store(monkeypatch, lambda: append(world.deny, BAN))
    assert racing_decision(world) is True  # this decision read the table before the ban: granted
    assert done == [GRAMMAR]
    assert access_line(tcpdmatch(world)) == "denied"
    (result,) = world.run(connect(ROOT_IDS))
    assert refused(result) and warnings(result) == []
    assert in_process(world) == {"hosts_ctl": False, "decide": False}


def test_a_same_size_rewrite_between_read_and_store_is_seen(world, monkeypatch):
    """A rewrite in place, same size, mtime put back (ctime moves: the kernel sets it)."""
    edit_before_store(monkeypatch, lambda: rewrite_in_place(world.deny, SAME_SIZE, keep_mtime=True))
    assert racing_decision(world) is True
    assert access_line(tcpdmatch(world)) == "denied"
    (result,) = world.run(connect(ROOT_IDS))
    assert refused(result)
    assert in_process(world) == {"hosts_ctl": False, "decide": False}


def test_a_same_size_rewrite_in_the_same_tick_is_seen(world, monkeypatch):
    """The racy-clean case: the rewrite lands in the tick of the table's last change, so (dev, ino, size,
    mtime, ctime) are what they were when the table was read. The read happened in that tick too (the fake
    clock), so the entry cannot be trusted on its identity alone: its content is checked."""
    clock = CoarseClock()
    monkeypatch.setattr(os, "fstat", clock)
    st = os.stat(world.deny)
    clock.frozen[st.st_dev, st.st_ino] = (st.st_mtime_ns, st.st_ctime_ns)
    monkeypatch.setattr(tablecache, "clock_ns", lambda: st.st_ctime_ns + 1_000_000, raising=False)
    edit_before_store(monkeypatch, lambda: rewrite_in_place(world.deny, SAME_SIZE))
    assert racing_decision(world) is True
    with open(world.deny, "rb") as f:  # what the cache sees of the table: the identity it read
        seen = os.fstat(f.fileno())
        assert (seen.st_size, seen.st_mtime_ns, seen.st_ctime_ns, f.read()) == (
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, SAME_SIZE)
    assert access_line(tcpdmatch(world, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)) == "denied"
    assert in_process(world) == {"hosts_ctl": False, "decide": False}


def test_a_same_size_rewrite_in_a_later_tick_is_trusted_on_identity(world, monkeypatch):
    """The other side of the racy rule: a table last changed well before it was read is stored as
    settled, and a hit on it does not read the table (today's cost)."""
    st = os.stat(world.deny)
    monkeypatch.setattr(tablecache, "clock_ns", lambda: st.st_ctime_ns + SETTLED)
    assert in_process(world)["hosts_ctl"] is True
    reads = counting_reads(monkeypatch)
    assert in_process(world)["hosts_ctl"] is True
    assert reads == []  # two hits, no read of the table


def counting_reads(monkeypatch) -> list:
    real = tablecache._read_all
    reads: list = []

    def read_all(fd, read):
        reads.append(fd)
        return real(fd, read)

    monkeypatch.setattr(tablecache, "_read_all", read_all)
    return reads


def test_a_change_during_the_read_is_read_again_and_never_stored_mixed(world, monkeypatch):
    """The bytes were read, then the ban landed before the read was checked: the two fstats differ, so
    the table is read once more, and that decision already denies."""
    real = tablecache._read_all
    calls: list = []

    def read_all(fd, read):
        data = real(fd, read)
        calls.append(data)
        if len(calls) == 1:
            append(world.deny, BAN)
        return data

    monkeypatch.setattr(tablecache, "_read_all", read_all)
    assert racing_decision(world) is False
    assert calls == [GRAMMAR, GRAMMAR + BAN]
    assert access_line(tcpdmatch(world)) == "denied"


def test_a_table_that_changes_on_every_read_is_used_but_never_stored(world, monkeypatch):
    real = tablecache._read_all

    def read_all(fd, read):
        data = real(fd, read)
        append(world.deny, b"# another line\n")
        return data

    monkeypatch.setattr(tablecache, "_read_all", read_all)
    assert in_process(world) == {"hosts_ctl": True, "decide": True}
    assert not os.path.exists(world.roots(world.deny))  # never a cache of bytes that may be a mix


# racy entries: checked on every hit while they are racy, settled once it is safe ----------------------------
def big_table() -> bytes:
    """Over tablecache.VERIFY_MAX: a racy entry of it is rewritten as settled once a hit checked it."""
    return b"".join(b"ALL: 10.%d.%d.1\n" % (n >> 8, n & 255) for n in range(8000)) + GRAMMAR


def test_a_racy_entry_of_a_big_table_is_checked_then_settled(world, monkeypatch):
    world.tables(None, big_table().decode())
    assert len(big_table()) > tablecache.VERIFY_MAX
    st = os.stat(world.deny)
    now = [st.st_ctime_ns + 1_000_000]  # read in the tick of the last change: racy
    monkeypatch.setattr(tablecache, "clock_ns", lambda: now[0])
    assert in_process(world)["hosts_ctl"] is True
    cache_file = world.roots(world.deny)
    stored = os.stat(cache_file).st_ino
    reads = counting_reads(monkeypatch)
    assert in_process(world)["hosts_ctl"] is True
    assert len(reads) == 2 and os.stat(cache_file).st_ino == stored  # checked on each hit, left as it is
    now[0] = st.st_ctime_ns + SETTLED
    reads.clear()
    assert in_process(world)["hosts_ctl"] is True
    assert len(reads) == 1 and os.stat(cache_file).st_ino != stored  # checked once more, then settled
    reads.clear()
    assert in_process(world) == {"hosts_ctl": True, "decide": True}
    assert reads == []  # hits on identity alone, as before the fix


def test_a_racy_entry_of_a_small_table_is_checked_on_every_hit_and_left_as_it_is(world, monkeypatch):
    st = os.stat(world.deny)
    now = [st.st_ctime_ns + 1_000_000]
    monkeypatch.setattr(tablecache, "clock_ns", lambda: now[0])
    in_process(world)
    cache_file = world.roots(world.deny)
    stored = os.stat(cache_file).st_ino
    now[0] = st.st_ctime_ns + SETTLED
    reads = counting_reads(monkeypatch)
    assert in_process(world) == {"hosts_ctl": True, "decide": True}
    assert len(reads) == 2 and os.stat(cache_file).st_ino == stored


def test_a_big_table_whose_parse_outlasted_the_racy_window_is_stored_settled(world, monkeypatch):
    """A huge table takes seconds to parse: when its last change is safely past by the time the parse is
    stored, the table is read once more, and stored settled if it is still what was parsed."""
    world.tables(None, big_table().decode())
    st = os.stat(world.deny)
    now = [st.st_ctime_ns + 1_000_000]
    monkeypatch.setattr(tablecache, "clock_ns", lambda: now[0])
    real = access.parsed_table.__wrapped__

    def slow_parse(data, path):
        now[0] = st.st_ctime_ns + SETTLED
        return real(data, path)

    monkeypatch.setattr(access, "parsed_table", slow_parse)
    assert in_process(world)["decide"] is True
    reads = counting_reads(monkeypatch)
    assert in_process(world)["decide"] is True
    assert reads == []


def test_a_same_tick_change_during_a_long_parse_keeps_the_entry_racy(world, monkeypatch):
    """As above, but the table was rewritten (same size, same tick) between the read and the end of the
    parse: read again before the store, it no longer holds what was parsed, so the entry stays racy and
    the next decision sees the rewrite."""
    world.tables(None, big_table().decode())
    clock = CoarseClock()
    monkeypatch.setattr(os, "fstat", clock)
    st = os.stat(world.deny)
    clock.frozen[st.st_dev, st.st_ino] = (st.st_mtime_ns, st.st_ctime_ns)
    now = [st.st_ctime_ns + 1_000_000]
    monkeypatch.setattr(tablecache, "clock_ns", lambda: now[0])
    real = access.parsed_table.__wrapped__

    def slow_parse(data, path):
        if now[0] < st.st_ctime_ns + SETTLED:
            rewrite_in_place(world.deny, big_table().replace(GRAMMAR, SAME_SIZE))
            now[0] = st.st_ctime_ns + SETTLED
        return real(data, path)

    monkeypatch.setattr(access, "parsed_table", slow_parse)
    assert racing_decision(world) is True
    assert in_process(world) == {"hosts_ctl": False, "decide": False}


def test_a_non_root_service_settles_roots_racy_cache_in_its_own_directory(world, monkeypatch):
    """nobody cannot rewrite root's cache: it checks it, and keeps a settled copy in users/<uid>, which it
    prefers from then on while root's is still racy."""
    import marshal

    world.tables(None, big_table().decode())
    os.chmod(world.deny, 0o644)
    st = os.stat(world.deny)
    now = [st.st_ctime_ns + 1_000_000]
    monkeypatch.setattr(tablecache, "clock_ns", lambda: now[0])
    in_process(world)  # root's cache, racy
    roots = world.roots(world.deny)
    before = os.stat(roots)
    now[0] = st.st_ctime_ns + SETTLED
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            reads = counting_reads(monkeypatch)
            counts = []
            for _ in range(3):
                assert in_process(world) == {"hosts_ctl": True, "decide": True}
                counts.append(len(reads))
            os.write(write, marshal.dumps(counts))
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        counts = marshal.loads(f.read())
    assert os.waitpid(pid, 0)[1] == 0
    assert counts == [1, 1, 1]  # one check, by the first load; every later load a hit on its own copy
    assert os.path.exists(world.own(65534, world.deny))
    after = os.stat(roots)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # root's: untouched


# the property --------------------------------------------------------------------------------------------
TICK = 10_000_000  # the fake file system's timestamp granularity (ns)
QUERIES = ("127.0.0.1", "127.0.0.2", "10.9.9.9", "10.9.9.8", "10.0.3.7", "192.0.2.1")
LINES = (GRAMMAR.replace(b"in.fingerd", b"sshd"), b"sshd: 127.0.0.1\n", b"sshd: 127.0.0.2 : allow\n",
         b"ALL: 10.0.3.7\n", b"# a comment\n", b"sshd: 10.9.9.8, 127.0.0.2\n", b"ALL: 127.0.0.1 EXCEPT 127.0.0.1\n")


def run_of_plain_lines(seed: int) -> bytes:
    """17 plain lines of one daemon: an indexed Run, whose arrays the cache maps."""
    return b"".join(b"ALL: 10.0.%d.%d\n" % ((seed + n) % 5, n) for n in range(17))


tables = st.lists(st.one_of(st.sampled_from(LINES), st.integers(0, 9).map(run_of_plain_lines)), max_size=5).map(
    b"".join)
steps = st.lists(st.tuples(
    st.sampled_from([0, 0, 1, 3 * TICK // 2, 3 * 10**9]),       # how far the clock moves before this load
    st.sampled_from(["none", "between loads", "during the read", "before the store"]),  # where the edit lands
    st.sampled_from(["append", "same size", "truncate", "rename over"]),
    st.integers(0, 2**32 - 1),                                    # what the edit writes
    st.sampled_from(QUERIES),
    st.sampled_from([0, 0, 3 * 10**9]),                          # how long the parse takes, if there is one
), min_size=1, max_size=25)


class World:
    """A table on a fake coarse-timestamp file system, edited at chosen points of chosen loads."""

    def __init__(self, base: str, first: bytes) -> None:
        self.path = os.path.join(base, "hosts.deny")
        self.scratch = os.path.join(base, "scratch")
        self.now = 10**18
        self.fstat = CoarseClock()
        self.write_new(self.path, first)
        self.point = "none"
        self.kind, self.seed, self.parse_takes = "append", 0, 0
        self.snapshot: bytes | None = None
        self.active = True

    def stamp(self, fd: int) -> None:
        st = self.fstat.real(fd)
        tick = self.now // TICK * TICK
        self.fstat.frozen[st.st_dev, st.st_ino] = (tick, tick)

    def write_new(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            self.stamp(fd)
        finally:
            os.close(fd)

    def edit(self) -> None:
        import random

        rng = random.Random(self.seed)
        with open(self.path, "rb") as f:
            data = f.read()
        if self.kind == "rename over":
            new = self.path + ".new"
            self.write_new(new, bytes(data) + rng.choice(LINES) if rng.random() < 0.5 else rng.choice(LINES))
            os.replace(new, self.path)
            return
        fd = os.open(self.path, os.O_WRONLY | (os.O_APPEND if self.kind == "append" else 0))
        try:
            if self.kind == "append":
                os.write(fd, rng.choice(LINES))
            elif self.kind == "truncate":
                os.ftruncate(fd, rng.randrange(len(data) + 1))
            else:  # same size, in place: digits changed, or the lines in another order
                lines = data.splitlines(keepends=True)
                if rng.random() < 0.5 and len(lines) > 1:
                    rng.shuffle(lines)
                    changed = b"".join(lines)
                else:
                    changed = bytes(rng.choice(b"0123456789") if chr(c).isdigit() and rng.random() < 0.3 else c
                                    for c in data)
                os.pwrite(fd, changed, 0)
            self.stamp(fd)
        finally:
            os.close(fd)

    def at(self, point: str) -> None:
        if self.active and self.point == point:
            self.point = "done"
            self.edit()

    def current(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()


def verdict(path: str, address: str) -> tuple[bool, int | None]:
    decided = access.decide(Request("sshd", Endpoint(address), Endpoint()), CollectingDiagnostics(), DryRun(),
                            "/nonexistent", path)
    return decided.granted, decided.rule.line if decided.rule else None


@pytest.mark.parametrize(("cache", "verify_max"), [("on", None), ("on", 0), ("off", None)])
@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=tables, steps=steps)
def test_every_load_decides_as_a_fresh_parse_of_what_it_read(cache, verify_max, first, steps):
    """Random edits (append, same-size rewrite in place, truncate, rename over), between loads, during a
    load's read and between its read and its store, on a file system whose timestamps move in ticks;
    every load's verdict is that of a parse without any cache of the file as it was after the load's read
    (as it was when the load began, for a load that read nothing). `verify_max` 0: every racy entry is
    settled by rewriting it; "off": no CACHE_DIR, the library's in-process memo only."""
    base = tempfile.mkdtemp(prefix="pywrap-cacheprop-")
    patches = Patches()
    try:
        w = World(base, first)
        patches.set(settings, "CACHE_DIR", os.path.join(base, "cache") if cache == "on" else "")
        patches.set(os, "fstat", w.fstat)
        patches.set(tablecache, "clock_ns", lambda: w.now, raising=False)
        if verify_max is not None:
            patches.set(tablecache, "VERIFY_MAX", verify_max, raising=False)
        access.parsed_table.cache_clear()
        real_parse, real_read = access.parsed_table, getattr(tablecache, "_read_all", None)

        def read_all(fd, read):
            data = real_read(fd, read)
            if w.active:
                w.snapshot = data  # the file as this read left it (the edit below comes after)
                w.at("during the read")
            return data

        def parse(data, path):
            if w.active:
                if w.snapshot is None:
                    w.snapshot = data  # (before the fix the read is not a function of its own)
                w.at("before the store")
                w.now += w.parse_takes
            return real_parse(data, path)

        patches.set(access, "parsed_table", parse)
        if real_read is not None:
            patches.set(tablecache, "_read_all", read_all)
        for number, (advance, point, kind, seed, query, parse_takes) in enumerate(steps):
            w.now += advance
            w.point, w.kind, w.seed, w.parse_takes = point, kind, seed, parse_takes
            w.at("between loads")
            w.snapshot, w.active = None, True
            start = w.current()
            got = verdict(w.path, query)
            w.active = False
            seen = start if w.snapshot is None else w.snapshot
            with open(w.scratch, "wb") as f:
                f.write(seen)
            with patches.scoped(settings, "CACHE_DIR", ""):
                expected = verdict(w.scratch, query)
            assert got == expected, (number, point, kind, seen)
    finally:
        patches.undo()
        access.parsed_table.cache_clear()
        shutil.rmtree(base, ignore_errors=True)


class Patches:
    """monkeypatch for a hypothesis test (a function-scoped fixture would be shared by its examples)."""

    def __init__(self) -> None:
        self.saved: list = []

    def set(self, target, name: str, value, raising: bool = True) -> None:
        if raising and not hasattr(target, name):
            raise AttributeError(name)
        self.saved.append((target, name, getattr(target, name, None), hasattr(target, name)))
        setattr(target, name, value)

    def undo(self) -> None:
        while self.saved:
            target, name, value, existed = self.saved.pop()
            if existed:
                setattr(target, name, value)
            else:
                delattr(target, name)

    def scoped(self, target, name: str, value):
        import contextlib

        @contextlib.contextmanager
        def scope():
            old = getattr(target, name)
            setattr(target, name, value)
            try:
                yield
            finally:
                setattr(target, name, old)

        return scope()
