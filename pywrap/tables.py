"""Table files (hosts.allow, hosts.deny) -> logical lines, exactly as the reference assembles them.

Contract: `logical_lines(data)` yields LogicalLine(text, line, complete) for every logical line of `data`
(bytes), with the reference's rules: a backslash just before a newline joins the next physical line; a
logical line is built in a 2048-byte buffer, so it holds at most 2046 characters plus the newline; `line` is
the number of newlines consumed so far (the last physical line of a complete logical line, one less for an
unfinished one); a NUL byte ends the text of the physical line it is in, and since the newline after it is
then unseen, the next physical line is glued on (the C code measures with strlen). A logical line that does
not end in a newline (buffer full, or end of file) has complete=False.

`open_regular(path)` and `read_bounded(fd)` are how every table and /file list is read (tcpd, tcpdmatch,
the library, `read_table`): only a regular file of at most settings.TABLE_MAX_BYTES, opened without ever
blocking (a FIFO), read no further than that bound; anything else raises `Refused`, which callers turn into
a fail-closed verdict. A directory raises IsADirectoryError: callers keep the reference's empty table.

`read_table(path)` opens and reads a table, mapping the outcomes the evaluator distinguishes: missing
(ENOENT), unreadable (any other open error, or refused) and readable. It never raises for file-system
reasons.
"""

from __future__ import annotations

import errno
import os
import stat

from pywrap import settings
from pywrap.lean import record
from pywrap.text import decode

TYPE_CHECKING = False  # no typing or collections import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from collections.abc import Iterator


class LogicalLine(record("LogicalLine", "text line complete")):
    text: str       # latin-1 text, with its newline when complete
    line: int       # line number the reference reports for it
    complete: bool  # False: missing newline or line too long
    __slots__ = ()


def logical_lines(data: bytes, buffer_size: int = settings.TABLE_LINE_BUFFER) -> Iterator[LogicalLine]:
    pos, line, end = 0, 0, len(data)
    while pos < end:
        parts: list[bytes] = []
        room = buffer_size - 1  # fgets reads at most size-1 bytes into the space that is left
        while True:
            if pos >= end:  # EOF in the middle of a logical line (nothing collected: plain end of file)
                text = b"".join(parts)
                if text:
                    yield LogicalLine(decode(text), line, False)
                return
            newline = data.find(b"\n", pos, pos + room)
            stop = end if newline < 0 else newline + 1
            stop = min(stop, pos + room)
            chunk = data[pos:stop]
            pos = stop
            nul = chunk.find(b"\0")
            if nul >= 0:
                chunk = chunk[:nul]
            if chunk.endswith(b"\n"):
                line += 1
                if chunk.endswith(b"\\\n"):
                    chunk = chunk[:-2]
                else:
                    parts.append(chunk)
                    yield LogicalLine(decode(b"".join(parts)), line, True)
                    break
            parts.append(chunk)
            room -= len(chunk)
            if room <= 0:  # buffer full without a newline: "line too long"
                yield LogicalLine(decode(b"".join(parts)), line, False)
                break


def is_skipped(text: str) -> bool:
    """Comment (a `#` in column 1) or blank (only space, tab, CR, LF)."""
    return text.startswith("#") or not text.strip(" \t\r\n")


def significant_lines(data: bytes, buffer_size: int = settings.TABLE_LINE_BUFFER) -> list[LogicalLine]:
    """The logical lines the scan must look at: rules, and unfinished lines (even comments: the reference
    stops at any line without a newline). Tables without continuations, NUL bytes or over-long lines (a
    100,000-line hosts.deny from fail2ban) take a bulk path: each physical line is a logical line."""
    if b"\0" not in data and b"\\\n" not in data:
        pieces = decode(data).split("\n")
        last = pieces.pop()  # what follows the last newline: "" when the file ends with one
        limit = buffer_size - 2  # the longest text that fits in the buffer with its newline
        if len(last) <= limit and max(map(len, pieces), default=0) <= limit:
            make = tuple.__new__  # the record's own __new__ costs more than the rest of this, per line
            lines = [make(LogicalLine, (piece + "\n", number, True)) for number, piece in enumerate(pieces, 1)
                     if not is_skipped(piece)]
            if last:
                lines.append(LogicalLine(last, len(pieces), False))
            return lines
    return [x for x in logical_lines(data, buffer_size) if not x.complete or not is_skipped(x.text)]


class Refused(Exception):
    """A table or /file list that is not read at all: not a regular file, or bigger than the bound. The text
    says why (`a FIFO, not a regular file`)."""


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _too_big() -> Refused:
    return Refused(f"larger than {settings.TABLE_MAX_BYTES} bytes, the limit for tables and /file lists")


def open_regular(path: str) -> tuple[int, int]:
    """(fd, size) of `path`, open for reading, when it is a regular file of at most TABLE_MAX_BYTES.
    Raises FileNotFoundError, IsADirectoryError, Refused, or another OSError."""
    # O_NONBLOCK: opening a FIFO that has no writer would otherwise wait forever (the reference hangs there)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(st.st_mode):  # a device or FIFO can be endless (/dev/zero) or never end (a FIFO)
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
            raise Refused(f"{kind}, not a regular file")
        if st.st_size > settings.TABLE_MAX_BYTES:
            raise _too_big()
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def read_bounded(fd: int) -> bytes:
    """The whole of an open regular file; Refused if it holds more than TABLE_MAX_BYTES (it may have grown
    since it was opened): never more than the bound and one byte is read."""
    limit = settings.TABLE_MAX_BYTES
    chunks, total = [], 0
    while total <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise _too_big()
    return b"".join(chunks)


def read_regular(path: str) -> bytes:
    """open_regular, then read_bounded: a table's or /file list's bytes (same exceptions)."""
    fd, _ = open_regular(path)
    try:
        return read_bounded(fd)
    finally:
        os.close(fd)


class TableRead(record("TableRead", "path data error missing", defaults=(False,))):
    path: str
    data: bytes | None   # None: missing, unreadable or refused
    error: str | None    # why it was not read (strerror, or the refusal) when it exists; None otherwise
    missing: bool
    __slots__ = ()


def read_table(path: str) -> TableRead:
    try:
        return TableRead(path, read_regular(path), None)
    except IsADirectoryError:
        # the reference opens a directory and reads no line from it: an empty table
        return TableRead(path, b"", None)
    except FileNotFoundError:
        return TableRead(path, None, None, missing=True)
    except Refused as e:
        return TableRead(path, None, str(e))
    except OSError as e:
        return TableRead(path, None, os.strerror(e.errno or errno.EIO))
