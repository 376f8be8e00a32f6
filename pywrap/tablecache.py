"""A cache of parsed tables, so that tcpd does not load the grammar (pyparsing) on every connection.

Contract: `read_file(fd)` reads the open table file `fd` and says which file state the bytes are the content
of; `cached_entries(path, fd)` returns the parsed entries of `fd` if the cache holds them for exactly this
file state, else None; `store_entries(path, fd, entries, snapshot)` records the parse of a snapshot. A file
state is (device, inode, size, mtime_ns, ctime_ns) of the open file.

What is stored is keyed on what was read, never on the file as it is at store time: `read_file` takes the
state with fstat on the same descriptor before and after reading, and a snapshot is storable only when the
two agree (otherwise the file changed while it was read, fail2ban's `printf >>` in the middle of a
connection: it is read once more, and if it changed again its bytes decide this one connection and are
never stored). Timestamps move in ticks (a jiffy on most Linux file systems, 2 s on FAT), so a same-size
rewrite in place within the tick of the file's last change leaves its state as it was, and an entry whose
state had not settled when it was read (its mtime or ctime not SETTLE_NS older than the read: "racy", as
git calls it) also holds the CRC-32 of the bytes it was parsed from: a hit on it reads the table and checks
them. Once the state has settled (no later change can keep it), the first hit that checks the bytes of a
table of VERIFY_MAX or more rewrites the entry without the check (reading a smaller table costs less than
rewriting its cache, so its entry stays as it is), so a hit on a big table that did not change recently
never reads the table. The cache is plain data (marshal of tuples, strings, numbers, booleans and None
only — never pickle — checked type by type on load), written atomically (temp file + rename, safe under
many concurrent tcpd processes), no more readable than the table itself.

Whose caches a process trusts: only those it or root wrote. CACHE_DIR (root-owned, 0755) holds root's
caches; root reads and writes only there. A process of another uid reads root's cache of a table when it
is fresh (root cannot be an attacker), and otherwise reads and writes its own in CACHE_DIR/users/<uid>:
CACHE_DIR/users is root-owned and sticky (1733, like /tmp), and <uid> (0700) is made by that uid on first
use and trusted only if it is a real directory owned by the uid and writable by nobody else, so no user can
plant or read another's. (A CACHE_DIR owned by the user itself, a private install, is its own and used
directly.) Directories and files are opened without following symbolic links and checked on what was
opened, and a cache file must be owned by root or the running user and writable by neither group nor
others. Anything odd (corrupt, truncated, foreign, a hostile, missing, read-only or full directory) means a
miss and the slow path, with `note` told why once per process; it can never change a verdict. Its location
is the CACHE_DIR build setting; "" turns it off.
"""

from __future__ import annotations

import errno
import marshal
import os
import stat
import struct
import sys
import zlib
from time import time_ns as clock_ns  # the clock a read is timed by (a module attribute: tests replace it)

from pywrap import settings
from pywrap.index import DamagedData, Run
from pywrap.lean import record
from pywrap.rules import LineProblem, OptionField, PatternList, Rule

FORMAT = 7
MAGIC = f"pywrap-tables-{FORMAT}-{sys.version_info[0]}.{sys.version_info[1]}"


def _cache_name(path: str) -> str:
    return os.path.abspath(path).replace("%", "%25").replace("/", "%2F") + ".tables"


def _cache_file(path: str) -> str | None:
    """Where the cache of `path` is in CACHE_DIR itself (root's, or a user's own install)."""
    return os.path.join(settings.CACHE_DIR, _cache_name(path)) if settings.CACHE_DIR else None


def _state(fd: int) -> tuple[int, int, int, int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# what was read, and when ------------------------------------------------------------------------------
SETTLE_NS = 2_000_000_000  # a file last changed less than this before a read may change again unseen
VERIFY_MAX = 64 << 10  # bytes: from this size on, a racy entry is rewritten settled once it may be


class Snapshot(record("Snapshot", "data state at")):
    data: bytes      # what was read, from the start of the file
    state: tuple | None  # the file state `data` is the content of; None: it changed while it was read
    at: int          # clock_ns() just before the read
    __slots__ = ()


def settled(state: tuple, at: int) -> bool:
    """Whether any change of the file after `at` must show in its state: its last change (the later of
    mtime and ctime) is SETTLE_NS older than `at`, so a later one lands in a later timestamp tick. The
    margin is far wider than any tick but FAT's 2 s, and covers a coarse clock lagging the fine one."""
    return max(state[3], state[4]) + SETTLE_NS < at


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_all(fd: int, read) -> bytes:
    """The file's bytes from its start, by `read(fd)`: the one place a table is read (tests hook it)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return read(fd)


def read_file(fd: int, read=_read_to_end) -> Snapshot:
    """All of the open table `fd`, by `read(fd)`, with the state it is the content of: fstat before and after
    the read must agree and the size be what was read, or the file changed meanwhile and the bytes may mix
    two versions. Then it is read once more; if it changed again, that read is returned with state None
    (good for this decision, which is what this process read, never for the cache)."""
    for _ in range(2):
        at = clock_ns()
        before = _state(fd)
        data = _read_all(fd, read)
        if _state(fd) == before and len(data) == before[2]:
            return Snapshot(data, before, at)
    return Snapshot(data, None, at)


def _holds(fd: int, state: tuple, check: int) -> int | None:
    """When the open table, in `state`, was read and found to hold the bytes whose CRC-32 is `check` (the
    clock just before the read), or None. Never reads more than `state`'s size and one byte."""
    at = clock_ns()
    if _state(fd) != state:
        return None
    data = _read_all(fd, lambda f: _read_upto(f, state[2] + 1))
    if _state(fd) != state or len(data) != state[2] or zlib.crc32(data) != check:
        return None
    return at


def _read_upto(fd: int, size: int) -> bytes:
    chunks, total = [], 0
    while total < size and (chunk := os.read(fd, min(1 << 20, size - total))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


# entries <-> plain data ----------------------------------------------------------------------------
def _plist_data(plist: PatternList | None):
    return None if plist is None else (tuple(plist.patterns), _plist_data(plist.exceptions))


def _plist(data) -> PatternList:
    patterns, exceptions = data
    if not (isinstance(patterns, tuple) and all(isinstance(p, str) for p in patterns)):
        raise ValueError("bad pattern list")
    return PatternList(patterns, None if exceptions is None else _plist(exceptions))


def to_data(entries, blobs: list) -> tuple:
    out = []
    for entry in entries:
        if isinstance(entry, Run):
            out.append(("N", *entry.to_data(blobs)))
        elif isinstance(entry, Rule):
            options = None if entry.options is None else tuple((o.keyword, o.value) for o in entry.options)
            out.append(("R", entry.file, entry.line, _plist_data(entry.daemons), _plist_data(entry.clients),
                        options))
        else:
            out.append(("P", entry.file, entry.line, tuple(entry.messages), entry.fatal))
    return tuple(out)


def from_data(data, blobs: list) -> tuple:
    entries = []
    for item in data:
        if item[0] == "R":
            _, file, line, daemons, clients, options = item
            if options is not None:
                if not all(isinstance(k, str) and isinstance(v, str) for k, v in options):
                    raise ValueError("bad options")
                options = tuple(OptionField(k, v) for k, v in options)
            entries.append(Rule(_str(file), _int(line), _plist(daemons), _plist(clients), options))
        elif item[0] == "N":  # a Run, whose arrays are mapped blobs (their checksums were verified)
            entries.append(Run.from_data(item[1:], blobs))
        elif item[0] == "P":
            _, file, line, messages, fatal = item
            if not (all(isinstance(m, str) for m in messages) and isinstance(fatal, bool)):
                raise ValueError("bad problem")
            entries.append(LineProblem(_str(file), _int(line), tuple(messages), fatal))
        else:
            raise ValueError("bad entry")
    return tuple(entries)


def _str(value) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _int(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not a number")
    return value


# the cache directories ------------------------------------------------------------------------------
USERS = "users"  # CACHE_DIR/users/<uid>: the caches of processes not run as root
# O_PATH: CACHE_DIR/users (1733) may be searched but not read by the users whose directories it holds
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_said: set = set()  # (pid, text) of what was logged: each problem once per process, not per table or call


def _say(note, text: str) -> None:
    if note is not None and (key := (os.getpid(), text)) not in _said:
        _said.add(key)
        note(text)


def _trusted(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022


def _open_dir(name: str, where: str, note, dir_fd: int | None = None,
              quiet_if_missing: bool = True) -> int | None:
    """A directory opened without following a symbolic link (so what is checked is what is used, and
    nobody can swap it between the check and the use), or None with the reason said."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not quiet_if_missing:
            _say(note, f"{where}: missing (make install creates it); cache not used")
    except NotADirectoryError:
        try:
            link = stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
        except OSError:
            link = False
        _say(note, f"{where}: {'is a symbolic link' if link else 'not a directory'}; cache not used")
    except OSError as e:
        _say(note, f"{where}: {os.strerror(e.errno or 0)}; cache not used")
    return None


def _top(note, create: bool) -> tuple[int, bool] | None:
    """(CACHE_DIR opened, whether it is this process's own), or None. It must be a real directory owned by
    root or this user and writable by nobody else (or others could swap files in it). `create` makes a
    missing one first (CACHE_DIR/users is make install's to create). Opened on every use, so that a
    long-lived library process notices a change too."""
    directory = settings.CACHE_DIR
    if create and not os.path.lexists(directory):
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as e:
            _say(note, f"{directory}: missing, and cannot be created: {os.strerror(e.errno or 0)}; "
                       "cache not used")
            return None
    fd = _open_dir(directory, directory, note)
    if fd is None:
        return None
    st = os.fstat(fd)
    if not _trusted(st):
        os.close(fd)
        _say(note, f"{directory}: not a directory owned by root or this user and writable only by it; "
                   "cache not used")
        return None
    return fd, st.st_uid == os.geteuid()


def _own_dir(top: int, note, create: bool) -> tuple[int, str] | None:
    """CACHE_DIR/users/<uid> of this (non-root) process, opened, with its name for the log; created (0700)
    on first use when `create`. CACHE_DIR/users must be root's, and sticky if others may write to it; the
    uid's directory must be a real directory owned by the uid and writable only by it: anything another
    user planted there is refused, and said so."""
    base = f"{settings.CACHE_DIR}/{USERS}"
    users = _open_dir(USERS, base, note, top, quiet_if_missing=not create)
    if users is None:
        return None
    try:
        st = os.fstat(users)
        if st.st_uid != 0 or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
            _say(note, f"{base}: not a directory owned by root, sticky if others may write to it; "
                       "cache not used")
            return None
        uid = str(os.geteuid())
        where = f"{base}/{uid}"
        if create:
            try:
                os.mkdir(uid, 0o700, dir_fd=users)
            except FileExistsError:
                pass
            except OSError as e:
                _say(note, f"{where}: cannot create it: {os.strerror(e.errno or 0)}; cache not used")
                return None
        fd = _open_dir(uid, where, note, users)
        if fd is None:
            return None
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            os.close(fd)
            _say(note, f"{where}: not a directory owned by this user and writable only by it; cache not used")
            return None
        return fd, where
    finally:
        os.close(users)


def _write_dir(note) -> tuple[int, str] | None:
    """Where this process keeps its caches (opened), with its name for the log: CACHE_DIR when it is this
    process's own (root's, or a user's own install), else CACHE_DIR/users/<uid>."""
    top = _top(note, create=True)
    if top is None:
        return None
    fd, own = top
    if own:
        return fd, settings.CACHE_DIR
    try:
        return _own_dir(fd, note, create=True)
    finally:
        os.close(fd)


PREFIX = struct.Struct("<8sQQI")  # file tag, where the marshalled header starts, its length, its CRC-32
TAG = b"pywrapT7"


BLOCK = 1 << 16  # the unit of lazy checking: a lookup in a huge index touches a few of these


def _blocks(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK


class CheckedBlob:
    """A mapped array that can decide a verdict: each BLOCK is checked against its CRC-32 the first time
    any of it is read, so a lookup pays for the few blocks a binary search touches, not for the whole
    index. A failed check raises DamagedData (pywrap.access then parses the table instead)."""

    __slots__ = ("view", "crcs", "good")

    def __init__(self, view: memoryview, crcs: tuple) -> None:
        self.view, self.crcs, self.good = view, crcs, bytearray(len(crcs))

    def check(self, start: int, end: int) -> None:
        if not 0 <= start < end <= len(self.view):  # a position read from the cache points outside it
            raise DamagedData("out of range")
        for block in range(start // BLOCK, (end - 1) // BLOCK + 1):
            if not self.good[block]:
                if zlib.crc32(self.view[block * BLOCK:(block + 1) * BLOCK]) != self.crcs[block]:
                    raise DamagedData(block)
                self.good[block] = 1

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, where: slice) -> memoryview:
        start, stop, _ = where.indices(len(self.view))
        if stop > start:
            self.check(start, stop)
        return self.view[start:stop]

    def u32(self) -> CheckedU32:
        return CheckedU32(self)


class CheckedU32:
    """A uint32 sequence over a CheckedBlob (len, indexing; enough for bisect)."""

    __slots__ = ("blob", "items")

    def __init__(self, blob: CheckedBlob) -> None:
        if len(blob.view) % 4:
            raise ValueError("not a uint32 array")
        self.blob, self.items = blob, blob.view.cast("I")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> int:
        if i < 0:
            i += len(self.items)
        self.blob.check(4 * i, 4 * i + 4)  # DamagedData if out of range
        return self.items[i]


def cached_entries(path: str, fd: int, note=None) -> tuple | None:
    """The entries cached for exactly this state of the open table `fd`, or None. Root reads only CACHE_DIR
    (root's own caches); another user reads root's cache there when it is fresh, else its own in
    CACHE_DIR/users/<uid> (or CACHE_DIR itself, when that is the user's own), and its own first when root's
    is racy (it may have settled a copy of it). A racy entry is a hit only when the table still holds the
    bytes it was parsed from."""
    if not settings.CACHE_DIR:
        return None
    name = _cache_name(path)
    top = _top(note, create=False)
    if top is None:
        return None
    top_fd, own = top
    try:
        found = _read(top_fd, f"{settings.CACHE_DIR}/{name}", name, path, fd, note)
        if own or (found is not None and found.check is None):
            return _checked(path, fd, found, note)
        mine = _own_dir(top_fd, note, create=False)  # root's was missing, stale or racy
    finally:
        os.close(top_fd)
    if mine is not None:
        try:
            found = _read(mine[0], f"{mine[1]}/{name}", name, path, fd, note) or found
        finally:
            os.close(mine[0])
    return _checked(path, fd, found, note)


class _Found(record("_Found", "entries check start header region")):
    """A cache file that matched the table's state: its entries, the CRC-32 of the table's bytes when it is
    racy (else None), and what rewriting it takes (where its header starts, the header's fields, the bytes
    between PREFIX and the header, None for padding only)."""

    __slots__ = ()


def _checked(path: str, fd: int, found: _Found | None, note) -> tuple | None:
    """The entries of `found` if they may be used: a settled entry as it is; a racy one when the table still
    holds the bytes it was parsed from, and then, if the table is big and its state has settled by now,
    the entry is rewritten (in this process's own cache directory) without the check."""
    if found is None:
        return None
    if found.check is None:
        return found.entries
    state = found.header[1]
    at = _holds(fd, state, found.check)
    if at is None:
        return None  # changed in the tick of the entry's read: parse it
    if state[2] >= VERIFY_MAX and settled(state, at):
        header = marshal.dumps(found.header + (None,))
        region = found.region if found.region is not None else b"\0" * (found.start - PREFIX.size)
        prefix = PREFIX.pack(TAG, found.start, len(header), zlib.crc32(header))
        _write(path, fd, lambda: (prefix, region, header), note)
    return found.entries


def _read(dir_fd: int, cache: str, name: str, path: str, fd: int, note) -> _Found | None:
    """The file: PREFIX, the blobs (uint32 arrays and word keys of indexed runs) at 8-byte boundaries,
    then the marshalled header (magic, file state, path, entries, blob table, check). Blobs are
    memory-mapped, not read; every blob that can decide a verdict is checked against its CRC-32s as it is
    read."""
    try:
        # O_NOFOLLOW: a symlink planted as the cache file is never followed
        f = os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd), "rb")
    except OSError as e:
        if e.errno == errno.ELOOP:
            _say(note, f"{cache}: is a symbolic link; not used")
        return None  # none yet, or root's, kept from users who may not read the table
    try:
        st = os.fstat(f.fileno())
        if not _trusted(st):
            _say(note, f"{cache}: not owned by root or this user, or writable by others; not used")
            return None
        try:
            tag, start, length, checksum = PREFIX.unpack(f.read(PREFIX.size))
            f.seek(start)
            header = f.read(length)
            if tag != TAG or len(header) != length or zlib.crc32(header) != checksum:
                raise ValueError("header")
            magic, state, key_path, data, table, check = marshal.loads(header)
            if magic != MAGIC or key_path != path or state != _state(fd):
                return None
            if check is not None and _int(check) < 0:
                raise ValueError("check")
            blobs = []
            mapped = None
            if table:
                import mmap  # only for tables with indexed runs

                mapped = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
                for offset, size, crcs in table:
                    if offset + size > start or len(crcs) != _blocks(size):
                        raise ValueError("truncated")
                    if not all(isinstance(crc, int) for crc in crcs):
                        raise ValueError("checksums")
                    blobs.append(CheckedBlob(mapped[offset:offset + size], crcs))
            return _Found(from_data(data, blobs), check, start, (magic, state, key_path, data, table),
                          None if mapped is None else mapped[PREFIX.size:start])
        except Exception:  # corrupt, truncated or foreign content: a miss, never a crash
            _say(note, f"{cache}: unreadable cache, parsing {path} instead")
            return None
    finally:
        f.close()


def parse_turn(path: str, fd: int, note=None) -> tuple[tuple | None, int | None]:
    """After a cache miss on a big table, let one process parse it while the others wait for its result
    (a changed 1,000,000-line table takes seconds to parse, and every connection arriving meanwhile would
    otherwise parse it too). Returns (entries, None) when another process stored them while this one
    waited; (None, lock) when it is this process's turn: parse, store_entries, then end_turn(lock); and
    (None, None) when there is no lock to take (no usable cache directory) or PARSE_WAIT ran out: parse
    without one. The lock is flock(2) on a file beside this process's cache file (so only processes of
    one user wait for each other), released by the kernel if its holder dies."""
    if not settings.CACHE_DIR:
        return None, None
    place = _write_dir(note)
    if place is None:
        return None, None
    import fcntl
    import time

    try:
        lock = os.open(_cache_name(path) + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600, dir_fd=place[0])
    except OSError:
        return None, None  # store_entries says why
    finally:
        os.close(place[0])
    deadline = time.monotonic() + settings.PARSE_WAIT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(lock)
                _say(note, f"{path}: waited {settings.PARSE_WAIT} s for another process to parse it; parsing")
                return None, None
            time.sleep(0.02)
        except OSError:
            os.close(lock)
            return None, None
    entries = cached_entries(path, fd, note)  # the process that held the lock may have stored them
    if entries is not None:
        end_turn(lock)
        return entries, None
    return None, lock


def end_turn(lock: int) -> None:
    os.close(lock)  # closing the last descriptor releases the flock


def store_entries(path: str, fd: int, entries, snapshot: Snapshot, note=None) -> None:
    """Record `entries`, the parse of `snapshot` (read_file of the open table `fd`), under the state the
    snapshot is the content of (none: it changed while it was read, nothing is stored), in this process's
    own cache directory (written to a temporary file, then renamed over the old one). Racy unless that state
    had settled when it was read; a big table whose state has settled since (its parse took seconds) is
    read again, and stored settled if it still holds what was parsed. A cache directory that cannot be used
    or written (missing, read-only, full, someone else's) is said once per process; the entries are
    returned to the caller all the same."""
    state = snapshot.state
    if state is None:
        return

    def pieces() -> list:
        check = None if settled(state, snapshot.at) else zlib.crc32(snapshot.data)
        if check is not None and state[2] >= VERIFY_MAX and settled(state, clock_ns()):
            held = _holds(fd, state, check)
            if held is not None and settled(state, held):
                check = None
        blobs: list[bytes] = []
        data = to_data(entries, blobs)
        table, position = [], _aligned(PREFIX.size)
        for blob in blobs:
            crcs = tuple(zlib.crc32(blob[at:at + BLOCK]) for at in range(0, len(blob), BLOCK))
            table.append((position, len(blob), crcs))
            position = _aligned(position + len(blob))
        header = marshal.dumps((MAGIC, state, path, data, tuple(table), check))
        out, written = [PREFIX.pack(TAG, position, len(header), zlib.crc32(header))], PREFIX.size
        for blob, (offset, _, _) in zip(blobs, table, strict=True):
            out += (b"\0" * (offset - written), blob)
            written = offset + len(blob)
        return [*out, b"\0" * (position - written), header]

    _write(path, fd, pieces, note)


def _write(path: str, fd: int, pieces, note) -> None:
    """A cache file of `pieces()` (bytes-like pieces, or ValueError: nothing to store) for the table `path`
    (open as `fd`), in this process's own cache directory: a temporary file renamed over the old one."""
    if not settings.CACHE_DIR:
        return
    place = _write_dir(note)
    if place is None:
        return
    directory, where = place
    name = _cache_name(path)
    tmp = f"{name}.{os.getpid()}.tmp"
    try:
        # as readable as the table: a table others may not read is not shown to them through its cache
        mode = 0o644 if os.fstat(fd).st_mode & stat.S_IROTH else 0o600
        content = pieces()
        fd_out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=directory)
        try:
            for piece in content:
                _write_all(fd_out, piece)
        finally:
            os.close(fd_out)
        os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
    except (OSError, ValueError) as e:
        try:
            os.unlink(tmp, dir_fd=directory)
        except OSError:
            pass
        if isinstance(e, OSError):
            _say(note, f"{where}: cannot store parsed tables: {os.strerror(e.errno or 0)}; "
                       "they are parsed on every connection")
    finally:
        os.close(directory)


def _aligned(offset: int) -> int:
    return (offset + 7) // 8 * 8


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
