"""The parsed-table cache for services that do not run as root, through the installed tcpd.

Real loopback connections, tcpd run as root, as nobody and as other uids (setpriv), syslog from a private
/dev/log, mounts only inside private mount namespaces (tests/cachens.py). What is checked: a nobody service
keeps its own cache (CACHE_DIR/users/<uid>) and uses it on its next connection; it uses root's cache while
that is fresh, its own after a table changed; nothing one uid plants is trusted by another (root above all);
a read-only or full cache directory costs one warning per process and never a verdict.

Proof that a cache was used, without timing: a parse always ends in a store (or in a warning), so a cache
file left unchanged by a connection that read its table means the parse was skipped; and a cache edited
behind tcpd's back decides that connection against its table.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zlib

import pytest

from pywrap import tablecache

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NOBODY = (65534, 65534)
ROOT_IDS = (0, 0)
DAEMON = "#!/bin/sh\necho granted\n"


@pytest.fixture(scope="module")
def installed():
    """`make install` into a temporary prefix: tables in PREFIX/etc, the daemon in PREFIX/libexec, no pause
    after a refusal, CACHE_DIR=PREFIX/cache; returns (prefix, how make install left CACHE_DIR)."""
    prefix = tempfile.mkdtemp(prefix="pywrap-cacheusers-")
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
    as_installed = {name: _owner_mode(os.path.join(prefix, name)) for name in ("cache", "cache/users")}
    return prefix, as_installed


def _owner_mode(path: str) -> tuple[int, str] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_uid, oct(stat.S_IMODE(st.st_mode)) + ("d" if stat.S_ISDIR(st.st_mode) else "")


class Setup:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.cache = os.path.join(prefix, "cache")
        self.users = os.path.join(self.cache, "users")
        self.allow = os.path.join(prefix, "etc", "hosts.allow")
        self.deny = os.path.join(prefix, "etc", "hosts.deny")

    def tables(self, allow: str | None, deny: str | None) -> None:
        for path, text in ((self.allow, allow), (self.deny, deny)):
            if os.path.exists(path):
                os.unlink(path)
            if text is not None:
                with open(path, "w") as f:
                    f.write(text)

    def own(self, uid: int, table: str) -> str:
        return os.path.join(self.users, str(uid), name(table))

    def roots(self, table: str) -> str:
        return os.path.join(self.cache, name(table))

    def run(self, *steps: dict) -> list[dict]:
        with tempfile.TemporaryDirectory(prefix="pywrap-cachens-spec-") as tmp:
            spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
            with open(spec_path, "w") as f:
                json.dump({"prefix": self.prefix, "workdir": tmp, "steps": list(steps)}, f)
            proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                                   os.path.join(HERE, "cachens.py"), spec_path, out_path],
                                  capture_output=True, text=True, timeout=600, cwd=HERE)
            assert proc.returncode == 0, proc.stderr[-4000:]
            with open(out_path) as f:
                return json.load(f)


def name(table: str) -> str:
    return table.replace("%", "%25").replace("/", "%2F") + ".tables"


def connect(ids: tuple[int, int], source: str = "127.0.0.1") -> dict:
    return {"connect": {"uid": ids[0], "gid": ids[1], "source": source}}


def shell(ids: tuple[int, int], command: str) -> dict:
    return {"shell": command, "uid": ids[0], "gid": ids[1]}


def granted(result: dict) -> bool:
    return result["received"] == "granted\n" and result["status"] == 0


def refused(result: dict, source: str = "127.0.0.1") -> bool:
    return (result["received"] == "" and result["status"] == 0
            and f"refused connect from {source} ({source})" in result["log"])


def warnings(result: dict) -> list[str]:
    return [line for line in result["log"] if line.startswith(("warning:", "error:"))]


def edited(cache_file: str, old: bytes, new: bytes) -> bytes:
    """The cache file with `old` (a pattern, once in its header) replaced by `new` of the same length and
    the header's checksum made right again: a valid cache of a table that says something else."""
    with open(cache_file, "rb") as f:
        blob = f.read()
    tag, start, length, _ = tablecache.PREFIX.unpack(blob[:tablecache.PREFIX.size])
    header = blob[start:start + length]
    assert header.count(old) == 1 and len(old) == len(new)
    header = header.replace(old, new)
    return tablecache.PREFIX.pack(tag, start, length, zlib.crc32(header)) + blob[tablecache.PREFIX.size:start] + header


def rewrite(path: str, data: bytes) -> None:
    """Replace a file's content in place: its owner, mode and inode stay."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()


def identity(path: str) -> tuple:
    st = os.stat(path)
    with open(path, "rb") as f:
        return st.st_ino, st.st_mtime_ns, st.st_uid, f.read()


@pytest.fixture
def setup(installed):
    """The installed copy with CACHE_DIR as `make install` leaves it (emptied between tests)."""
    s = Setup(installed[0])
    shutil.rmtree(s.cache, ignore_errors=True)
    os.mkdir(s.cache)
    os.chmod(s.cache, 0o755)
    os.mkdir(s.users)
    os.chmod(s.users, 0o1733)
    return s


def test_make_install_creates_the_cache_directories(installed):
    _, as_installed = installed
    assert as_installed == {"cache": (0, "0o755d"), "cache/users": (0, "0o1733d")}


def test_a_service_run_as_nobody_gets_a_cache_hit_on_its_second_connection(setup):
    setup.tables("in.fingerd: 127.0.0.1\n", "ALL: ALL\n")
    (first,) = setup.run(connect(NOBODY))
    assert granted(first) and warnings(first) == []
    assert _owner_mode(os.path.join(setup.users, "65534")) == (65534, "0o700d")
    mine = setup.own(65534, setup.allow)
    assert _owner_mode(mine)[0] == 65534
    assert not os.path.exists(setup.roots(setup.allow))  # root never connected: nobody parsed for itself
    # The cache now says 127.0.0.9 where the table says 127.0.0.1: a connection that follows the cache is
    # refused, one that parses the table is granted.
    rewrite(mine, edited(mine, b"127.0.0.1", b"127.0.0.9"))
    before = identity(mine)
    (second,) = setup.run(connect(NOBODY))
    assert refused(second) and warnings(second) == []
    assert identity(mine) == before  # read, not parsed and written again


def test_nobody_uses_roots_cache_while_it_is_fresh_and_its_own_after_a_ban(setup):
    """fail2ban's case: root's cache serves every uid; after a ban, a nobody service parses once, keeps the
    result in its own directory, and uses it until the table changes again."""
    deny = "".join(f"ALL: 10.{n >> 8}.{n & 255}.1\n" for n in range(2000))
    setup.tables(None, deny)
    results = setup.run(connect(ROOT_IDS), connect(NOBODY))
    assert all(granted(r) and warnings(r) == [] for r in results)
    roots = setup.roots(setup.deny)
    assert _owner_mode(roots) == (0, "0o644")
    assert not os.path.exists(setup.own(65534, setup.deny))  # nobody parsed nothing: root's cache served
    with open(setup.deny, "a") as f:
        f.write("ALL: 127.0.0.1\n")  # the ban
    (banned,) = setup.run(connect(NOBODY))
    assert refused(banned) and warnings(banned) == []  # root's cache is stale: not used
    mine = setup.own(65534, setup.deny)
    before = identity(mine)
    assert before[2] == 65534
    (again,) = setup.run(connect(NOBODY))
    assert refused(again) and warnings(again) == []
    assert identity(mine) == before  # a hit: not parsed again


def test_nobody_cannot_poison_the_cache_of_root_or_of_another_user(setup):
    setup.tables("in.fingerd: 127.0.0.9\n", "ALL: ALL\n")  # 127.0.0.1 is refused, whoever runs tcpd
    (first,) = setup.run(connect(NOBODY))
    assert refused(first)
    forged = os.path.join(setup.prefix, "forged")  # a valid cache that grants 127.0.0.1
    with open(forged, "wb") as f:
        f.write(edited(setup.own(65534, setup.allow), b"127.0.0.9", b"127.0.0.1"))
    os.chmod(forged, 0o644)
    n = name(setup.allow)
    mine, roots, users = setup.own(65534, setup.allow), setup.roots(setup.allow), setup.users
    results = setup.run(
        shell(NOBODY, f"cp {forged} {mine}"),                                    # its own: its business
        shell(NOBODY, f"cp {forged} {roots}"),                                   # root's: not writable
        shell(NOBODY, f"mkdir {users}/0 && cp {forged} {users}/0/{n}"),          # where root never looks
        shell(NOBODY, f"mkdir -m 777 {users}/4242 && cp {forged} {users}/4242/{n}"),  # before 4242 made it
        shell(NOBODY, f"ln -s 65534 {users}/4343"),                              # a link to its own
        shell(NOBODY, f"cp {forged} {users}/4444"),                              # a file, not a directory
        connect(NOBODY),
        connect((4242, 4242)),  # before root's first connection: root's cache would serve them
        connect((4343, 4343)),
        connect((4444, 4444)),
        connect(ROOT_IDS),
    )
    own, to_root, plant0, plant4242, link, plant_file, nobody, u4242, u4343, u4444, root = results
    assert own["status"] == 0 and to_root["status"] != 0, results
    assert plant0["status"] == plant4242["status"] == link["status"] == plant_file["status"] == 0, results
    assert granted(nobody)  # the forged cache is valid: whoever trusted it would grant
    assert refused(root) and warnings(root) == []
    assert _owner_mode(roots) == (0, "0o644") and b"127.0.0.9" in identity(roots)[3]  # root's own parse
    assert refused(u4242) and warnings(u4242) == [
        f"warning: {users}/4242: not a directory owned by this user and writable only by it; cache not used"]
    assert refused(u4343) and warnings(u4343) == [f"warning: {users}/4343: is a symbolic link; cache not used"]
    assert refused(u4444) and warnings(u4444) == [f"warning: {users}/4444: not a directory; cache not used"]


def test_a_read_only_cache_directory_costs_one_warning_per_process(setup):
    setup.tables("in.fingerd: 127.0.0.9\n", "ALL: ALL\n")  # 127.0.0.1 reads both tables: two stores fail
    _, root, nobody, root_granted = setup.run({"mount": "ro", "path": setup.cache}, connect(ROOT_IDS),
                                              connect(NOBODY), connect(ROOT_IDS, "127.0.0.9"))
    assert refused(root) and warnings(root) == [
        f"warning: {setup.cache}: cannot store parsed tables: Read-only file system; they are parsed on every "
        "connection"]
    assert refused(nobody) and warnings(nobody) == [
        f"warning: {setup.users}/65534: cannot create it: Read-only file system; cache not used"]
    assert granted(root_granted) and len(warnings(root_granted)) == 1
    assert os.listdir(setup.cache) == ["users"] and os.listdir(setup.users) == []


def test_a_full_cache_directory_costs_one_warning_per_process(setup):
    setup.tables("in.fingerd: 127.0.0.9\n", "ALL: ALL\n")
    _, root, nobody, root_granted, listing = setup.run(
        {"mount": "full", "path": setup.cache}, connect(ROOT_IDS), connect(NOBODY), connect(ROOT_IDS, "127.0.0.9"),
        shell(ROOT_IDS, f"cd {setup.cache} && ls -A . users users/*"))
    assert refused(root) and warnings(root) == [
        f"warning: {setup.cache}: cannot store parsed tables: No space left on device; they are parsed on every "
        "connection"]
    assert refused(nobody) and warnings(nobody) == [
        f"warning: {setup.users}/65534: cannot store parsed tables: No space left on device; they are parsed on "
        "every connection"]
    assert granted(root_granted) and len(warnings(root_granted)) == 1
    assert listing["output"].split() == [".:", "filler", "users", "users:", "65534", "users/65534:"]  # no temp files
