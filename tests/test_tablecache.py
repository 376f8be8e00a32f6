"""The parsed-table cache: used when it matches the file exactly, never stale, never trusted when it is not
ours, never able to crash or change a verdict, safe with many processes at once."""

from __future__ import annotations

import marshal
import multiprocessing
import os
import sys
import zlib

import pytest

from pywrap import access, settings, tablecache
from pywrap.diag import CollectingDiagnostics

RULES = b"sshd: 10.0.0.1 EXCEPT 10.0.0.2 : spawn echo %a\nALL: .example.com\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "CACHE_DIR", str(tmp_path / "cache"))
    access.parsed_table.cache_clear()
    tablecache._said.clear()  # each test is a fresh process as far as "said once per process" goes
    return tmp_path


def load(path):
    diag = CollectingDiagnostics()
    status, entries = access.load_table(str(path), diag)
    return status, entries, diag.records


def counting_parser(monkeypatch):
    calls = []
    real = access.parsed_table.__wrapped__

    def parse(data, path):
        calls.append(path)
        return real(data, path)

    monkeypatch.setattr(access, "parsed_table", parse)
    return calls


def test_second_load_comes_from_the_cache(cache, monkeypatch):
    table = cache / "hosts.allow"
    table.write_bytes(RULES)
    calls = counting_parser(monkeypatch)
    first = load(table)
    second = load(table)
    assert first == second and first[0] == "ok" and len(first[1]) == 2
    assert calls == [str(table)]  # parsed once
    assert len(os.listdir(cache / "cache")) == 1


def test_an_edit_in_the_same_second_with_the_same_size_is_seen(cache, monkeypatch):
    table = cache / "hosts.allow"
    table.write_bytes(RULES)
    stamp = os.stat(table)
    load(table)
    table.write_bytes(RULES.replace(b"10.0.0.1", b"10.0.0.9"))
    os.utime(table, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same size, same mtime: ctime still moves
    _, entries, _ = load(table)
    assert entries[0].clients.patterns == ("10.0.0.9",)


def sealed(header: object) -> bytes:
    """A cache file whose (bad) header is well framed, with a matching CRC."""
    inner = marshal.dumps(header)
    return tablecache.PREFIX.pack(tablecache.TAG, tablecache.PREFIX.size, len(inner), zlib.crc32(inner)) + inner


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad checksum", "code", "wrong types", "empty"])
def test_a_damaged_cache_is_a_miss(cache, damage):
    table = cache / "hosts.allow"
    table.write_bytes(RULES)
    good = load(table)[1]
    (cache_file,) = (cache / "cache").iterdir()
    blob = cache_file.read_bytes()
    tag, start, length, checksum = tablecache.PREFIX.unpack(blob[:tablecache.PREFIX.size])
    magic, state, path, data, blobs, check = marshal.loads(blob[start:start + length])
    replacement = {
        "truncate": blob[: len(blob) // 2],
        "garbage": os.urandom(200),
        "bad checksum": blob[:-1] + bytes([blob[-1] ^ 1]),
        "code": sealed(compile("1/0", "x", "eval")),
        "wrong types": sealed((magic, state, path, (("R", 1, "x", None, None, None),), (), check)),
        "empty": b"",
    }[damage]
    cache_file.write_bytes(replacement)
    status, entries, records = load(table)
    assert status == "ok" and entries == good
    assert damage == "empty" or any("unreadable cache" in text for _, _, text in records)


def test_a_damaged_index_never_changes_a_verdict(cache):
    """Flip one byte in each array of a cached table in turn: the lookup that reads it notices, says so,
    parses the table instead and decides the same; the next connection has a repaired cache."""
    path = cache / "hosts.deny"
    path.write_bytes(b"".join(b"ALL: 10.0.%d.%d\n" % (n // 256, n % 256) for n in range(500))
                     + b"".join(b"ALL: 172.%d. host%d.example.org\n" % (n, n) for n in range(40)))
    queries = {"10.0.1.44": 301, "172.17.0.9": 518, "192.0.2.1": None}
    assert {q: decide_line(path, q)[0] for q in queries} == queries
    (cache_file,) = (cache / "cache").iterdir()
    good = cache_file.read_bytes()
    tag, start, length, _ = tablecache.PREFIX.unpack(good[:tablecache.PREFIX.size])
    table = marshal.loads(good[start:start + length])[4]
    noticed = 0
    for offset, size, _ in table:
        if not size:
            continue
        damaged = bytearray(good)
        damaged[offset + size // 2] ^= 0xFF
        cache_file.write_bytes(bytes(damaged))
        access.parsed_table.cache_clear()
        results = {q: decide_line(path, q) for q in queries}
        assert {q: line for q, (line, _) in results.items()} == queries
        warnings = [text for _, records in results.values() for _, _, text in records]
        if warnings:
            noticed += 1
            assert warnings == [f"{path}: damaged table cache, parsing {path} instead"]
            assert cache_file.read_bytes() == good  # written again from the parsed table
    # every array is read by one of the lookups but the by-name positions: no word here matches "unknown"
    assert noticed == sum(1 for _, size, _ in table if size) - 1


def test_a_checksummed_cache_with_impossible_positions_never_changes_a_verdict(cache):
    """A cache whose checksums are right but whose index points outside its arrays (written by a buggy or
    hostile owner) is caught like damage: the table is parsed instead."""
    path = cache / "hosts.deny"
    path.write_bytes(b"".join(b"ALL: 10.0.0.%d\n" % n for n in range(100)))
    assert decide_line(path, "10.0.0.7")[0] == 8
    (cache_file,) = (cache / "cache").iterdir()
    blob = bytearray(cache_file.read_bytes())
    tag, start, length, _ = tablecache.PREFIX.unpack(bytes(blob[:tablecache.PREFIX.size]))
    magic, state, key_path, data, table, check = marshal.loads(bytes(blob[start:start + length]))
    positions = data[0][6][1]  # the run's first-position array of its exact addresses
    offset, size, _ = table[positions]
    blob[offset:offset + size] = b"\xff\xff\xff\x7f" * (size // 4)
    table = list(table)
    table[positions] = (offset, size, (zlib.crc32(bytes(blob[offset:offset + size])),))
    header = marshal.dumps((magic, state, key_path, data, tuple(table), check))
    blob[start:] = header
    blob[:tablecache.PREFIX.size] = tablecache.PREFIX.pack(tag, start, len(header), zlib.crc32(header))
    cache_file.write_bytes(bytes(blob))
    access.parsed_table.cache_clear()
    line, records = decide_line(path, "10.0.0.7")
    assert line == 8
    assert [text for _, _, text in records] == [f"{path}: damaged table cache, parsing {path} instead"]


def _hold_parse_lock(table) -> int:
    """Take the parse lock of `table` as another tcpd would while it parses."""
    import fcntl

    lock = os.open(tablecache._cache_file(str(table)) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def test_while_one_process_parses_a_big_table_the_others_wait_for_its_result(cache, monkeypatch):
    import threading
    import time

    monkeypatch.setattr(settings, "PARSE_LOCK_MIN_SIZE", 0)
    table = cache / "hosts.deny"
    table.write_bytes(RULES)
    os.makedirs(settings.CACHE_DIR)
    real_parse = access.parsed_table.__wrapped__
    lock = _hold_parse_lock(table)  # "another process" is parsing
    calls = counting_parser(monkeypatch)
    got = []
    waiter = threading.Thread(target=lambda: got.append(load(table)))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive() and calls == []  # waiting, not parsing
    fd = os.open(table, os.O_RDONLY)
    tablecache.store_entries(str(table), fd, real_parse(RULES, str(table)), tablecache.read_file(fd))  # the other one's
    os.close(fd)
    os.close(lock)
    waiter.join(10)
    assert not waiter.is_alive() and calls == []  # it took the stored result instead of parsing
    assert got[0][0] == "ok" and len(got[0][1]) == 2


def test_the_wait_for_another_parse_is_bounded(cache, monkeypatch):
    import time

    monkeypatch.setattr(settings, "PARSE_LOCK_MIN_SIZE", 0)
    monkeypatch.setattr(settings, "PARSE_WAIT", 0.4)
    table = cache / "hosts.deny"
    table.write_bytes(RULES)
    os.makedirs(settings.CACHE_DIR)
    lock = _hold_parse_lock(table)  # a parse that never ends
    calls = counting_parser(monkeypatch)
    start = time.monotonic()
    status, entries, records = load(table)
    assert 0.4 <= time.monotonic() - start < 5
    assert status == "ok" and len(entries) == 2 and calls == [str(table)]
    assert any("waited 0.4 s for another process to parse it" in text for _, _, text in records)
    os.close(lock)
    load(table)
    assert len(calls) == 1  # stored by the process that parsed after waiting: a hit now


def test_small_tables_never_wait(cache, monkeypatch):
    table = cache / "hosts.deny"
    table.write_bytes(RULES)
    os.makedirs(settings.CACHE_DIR)
    lock = _hold_parse_lock(table)
    monkeypatch.setattr(settings, "PARSE_WAIT", 30)
    status, entries, _ = load(table)  # far below PARSE_LOCK_MIN_SIZE: parsed at once
    assert status == "ok" and len(entries) == 2
    os.close(lock)


def _parses_in_a_process(args) -> int:
    table, cache_dir = args
    settings.CACHE_DIR = cache_dir
    calls = []
    real = access.parsed_table

    def parse(data, path):
        calls.append(path)
        return real(data, path)

    access.parsed_table = parse
    assert access.load_table(table, CollectingDiagnostics())[0] == "ok"
    return len(calls)


def test_a_changed_big_table_is_parsed_by_one_of_many_processes(cache):
    table = cache / "hosts.deny"
    table.write_bytes(b"".join(b"ALL: 10.%d.%d.%d\n" % (n >> 16, (n >> 8) & 255, n & 255) for n in range(80_000)))
    assert os.path.getsize(table) >= settings.PARSE_LOCK_MIN_SIZE
    with multiprocessing.get_context("fork").Pool(16) as pool:
        parses = pool.map(_parses_in_a_process, [(str(table), str(cache / "cache"))] * 16)
    assert sum(parses) == 1


def test_the_parsed_table_memo_is_safe_from_many_threads():
    import threading

    failures = []

    def hammer(n: int) -> None:
        try:
            for i in range(3000):
                access.parsed_table(b"ALL: 10.0.%d.%d\n" % (n, i % 7), "hosts.deny")
        except Exception as e:  # the old one raised KeyError when two threads evicted at once
            failures.append(e)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to make the race show
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


def decide_line(path, address: str) -> tuple[int | None, list]:
    from pywrap.options import DryRun
    from pywrap.request import Endpoint, Request

    diag = CollectingDiagnostics()
    verdict = access.decide(Request("sshd", Endpoint(address), Endpoint()), diag, DryRun(), "/nonexistent",
                            str(path))
    return (verdict.rule.line if verdict.rule else None), diag.records


def test_a_cache_others_can_write_is_not_used(cache, monkeypatch):
    table = cache / "hosts.allow"
    table.write_bytes(RULES)
    load(table)
    (cache_file,) = (cache / "cache").iterdir()
    os.chmod(cache_file, 0o666)
    calls = counting_parser(monkeypatch)
    _, entries, records = load(table)
    assert calls == [str(table)] and len(entries) == 2
    assert any("writable by others; not used" in text for _, _, text in records)


NOBODY = 65534


def _world_writable(directory):
    directory.mkdir()
    os.chmod(directory, 0o777)


def _group_writable(directory):
    directory.mkdir()
    os.chmod(directory, 0o775)


def _foreign_owner(directory):
    directory.mkdir()
    os.chown(directory, NOBODY, NOBODY)


def _symlinked(directory):
    real = directory.parent / "elsewhere"
    real.mkdir()
    directory.symlink_to(real)


def _a_file(directory):
    directory.write_bytes(b"")


@pytest.mark.parametrize("make", [_world_writable, _group_writable, _foreign_owner, _symlinked, _a_file])
def test_a_hostile_cache_directory_is_never_used(cache, monkeypatch, make):
    """A cache directory someone else could write to, or point elsewhere, is neither read nor written: every
    connection parses, and says why in the log, once per process (not once per table or call)."""
    make(cache / "cache")
    table = cache / "hosts.allow"
    table.write_bytes(RULES)
    calls = counting_parser(monkeypatch)
    first, second = load(table), load(table)
    assert calls == [str(table)] * 2 and first[1] == second[1] and len(first[1]) == 2
    said = [text for _, _, text in first[2] + second[2]]
    assert len(said) == 1 and "cache not used" in said[0]
    for directory in (cache / "cache", cache / "elsewhere"):
        assert not directory.is_dir() or os.listdir(directory) == []


def test_a_symlinked_or_foreign_cache_file_is_not_used(cache, monkeypatch):
    table = cache / "hosts.allow"
    table.write_bytes(RULES)
    load(table)
    (cache_file,) = (cache / "cache").iterdir()
    os.chown(cache_file, NOBODY, NOBODY)
    calls = counting_parser(monkeypatch)
    _, entries, records = load(table)
    assert calls == [str(table)] and len(entries) == 2
    assert any("not owned by root or this user" in text for _, _, text in records)
    good = cache / "good.tables"
    cache_file.rename(good)
    os.chown(good, 0, 0)
    cache_file.symlink_to(good)  # a valid cache, but reached through a link
    _, entries, records = load(table)
    assert calls == [str(table)] * 2 and len(entries) == 2
    assert any("is a symbolic link; not used" in text for _, _, text in records)
    assert not cache_file.is_symlink()  # the parse replaced the link itself, not the file it pointed to


def test_no_cache_directory_is_fine(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "CACHE_DIR", "/proc/no-such-place/pywrap")
    table = tmp_path / "hosts.allow"
    table.write_bytes(RULES)
    assert load(table)[0] == "ok" and len(load(table)[1]) == 2


def _worker(args):
    table, cache_dir, edits = args
    settings.CACHE_DIR = cache_dir
    out = []
    for _ in range(edits):
        diag = CollectingDiagnostics()
        out.append(access.load_table(table, diag)[1][0].clients.patterns)
    return out


def test_many_processes_at_once(cache):
    table = cache / "hosts.allow"
    table.write_bytes(RULES)
    with multiprocessing.get_context("fork").Pool(16) as pool:
        results = pool.map(_worker, [(str(table), str(cache / "cache"), 5)] * 64)
    assert all(r == [("10.0.0.1",)] * 5 for r in results)
    assert [n for n in os.listdir(cache / "cache") if n.endswith(".tmp")] == []
    assert tablecache.cached_entries(str(table), os.open(table, os.O_RDONLY)) is not None


# other users than root: their own caches in CACHE_DIR/users/<uid> -----------------------------------------
@pytest.fixture
def shared(tmp_path, monkeypatch):
    """A CACHE_DIR laid out as make install lays it out, in a directory nobody may enter, and a table."""
    import tempfile

    base = tempfile.mkdtemp(prefix="pywrap-tablecache-")
    os.chmod(base, 0o755)
    cache_dir = os.path.join(base, "cache")
    os.mkdir(cache_dir, 0o755)
    os.mkdir(os.path.join(cache_dir, "users"))
    os.chmod(os.path.join(cache_dir, "users"), 0o1733)
    table = os.path.join(base, "hosts.allow")
    with open(table, "wb") as f:
        f.write(RULES)
    os.chmod(table, 0o644)
    monkeypatch.setattr(settings, "CACHE_DIR", cache_dir)
    access.parsed_table.cache_clear()
    tablecache._said.clear()
    yield base
    import shutil

    shutil.rmtree(base, ignore_errors=True)


def _loads_as_nobody(table: str, times: int = 2) -> tuple[int, list[str]]:
    """In a child process run as nobody: load `table` `times` times; (parses, what was said)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            calls = []
            real = access.parsed_table.__wrapped__

            def parse(data, path):
                calls.append(path)
                return real(data, path)

            access.parsed_table = parse
            said = []
            for _ in range(times):
                status_, entries, records = load(table)
                assert status_ == "ok" and len(entries) == 2
                said += [text for _, _, text in records]
            os.write(write, marshal.dumps((len(calls), said)))
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0
    return marshal.loads(data)


def test_a_nobody_process_keeps_its_own_cache(shared):
    table = os.path.join(shared, "hosts.allow")
    assert _loads_as_nobody(table) == (1, [])
    own = os.path.join(shared, "cache", "users", str(NOBODY))
    assert os.stat(own).st_uid == NOBODY and oct(os.stat(own).st_mode & 0o7777) == "0o700"
    (cache_file,) = os.listdir(own)
    assert os.stat(os.path.join(own, cache_file)).st_uid == NOBODY
    assert os.listdir(os.path.join(shared, "cache")) == ["users"]  # root's directory: untouched


def test_a_user_whose_own_cache_directory_it_is_uses_it_directly(shared):
    """A private install (CACHE_DIR of the user's own): no users/ needed."""
    cache_dir = os.path.join(shared, "cache")
    os.rmdir(os.path.join(cache_dir, "users"))
    os.chown(cache_dir, NOBODY, NOBODY)
    assert _loads_as_nobody(os.path.join(shared, "hosts.allow")) == (1, [])
    assert [n.endswith(".tables") for n in os.listdir(cache_dir)] == [True]


def _users_of_nobody(users):
    os.chown(users, NOBODY, NOBODY)


def _users_writable_not_sticky(users):
    os.chmod(users, 0o733)


def _users_a_link(users):
    os.rmdir(users)
    os.symlink("/tmp", users)


def _users_missing(users):
    os.rmdir(users)


def _uid_dir_of_another(users):
    os.mkdir(os.path.join(users, str(NOBODY)), 0o700)  # made by root, not by nobody


def _uid_dir_writable_by_others(users):
    own = os.path.join(users, str(NOBODY))
    os.mkdir(own)
    os.chown(own, NOBODY, NOBODY)
    os.chmod(own, 0o777)


@pytest.mark.parametrize(("make", "said"), [
    (_users_of_nobody, "users: not a directory owned by root, sticky if others may write to it; cache not used"),
    (_users_writable_not_sticky,
     "users: not a directory owned by root, sticky if others may write to it; cache not used"),
    (_users_a_link, "users: is a symbolic link; cache not used"),
    (_users_missing, "users: missing (make install creates it); cache not used"),
    (_uid_dir_of_another,
     "users/65534: not a directory owned by this user and writable only by it; cache not used"),
    (_uid_dir_writable_by_others,
     "users/65534: not a directory owned by this user and writable only by it; cache not used"),
])
def test_a_users_directory_that_cannot_be_trusted_is_refused_once_per_process(shared, make, said):
    make(os.path.join(shared, "cache", "users"))
    parses, texts = _loads_as_nobody(os.path.join(shared, "hosts.allow"), times=3)
    assert parses == 3 and texts == [f"{shared}/cache/{said}"]


def test_a_cache_is_no_more_readable_than_its_table(cache):
    for mode, expected in ((0o644, 0o644), (0o640, 0o600), (0o600, 0o600)):
        table = cache / f"hosts.{mode:o}"
        table.write_bytes(RULES)
        os.chmod(table, mode)
        load(table)
        assert os.stat(tablecache._cache_file(str(table))).st_mode & 0o777 == expected
