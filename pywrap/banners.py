"""The `banners` option's text: `<directory>/<daemon name>`, line ends made CR LF, %-expanded.

Contract: `banner_bytes(directory, request, warn)` returns the bytes the reference would write to the client,
or b"" when the file is missing (a warning only when the directory itself cannot be stat'ed). Quirks kept:
leading NUL bytes are sent as they are; lines are read in pieces of at most 8190 bytes; a newline gets CR LF
only when it is outside square brackets (the rule splitter is reused there); each piece is %-expanded.
"""

from __future__ import annotations

import os

from pywrap.expand import expand
from pywrap.request import Request
from pywrap.text import decode, encode, find_unbracketed

TYPE_CHECKING = False  # no typing or collections import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from collections.abc import Callable

PIECE = 8190
BANNER_LIMIT = 16382


def _pieces(data: bytes) -> list[bytes]:
    """fgets(buf, 8191) over the data: up to and including a newline, at most 8190 bytes each."""
    out, pos = [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + PIECE)
        end = pos + PIECE if nl < 0 else nl + 1
        out.append(data[pos:end])
        pos = end
    return out


def banner_bytes(directory: str, request: Request, warn: Callable[[str], None]) -> bytes:
    path = f"{directory}/{request.daemon}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        try:
            os.stat(directory)
        except OSError as e:
            warn(f"{directory}: {os.strerror(e.errno or 0)}")
        return b""
    lead = len(data) - len(data.lstrip(b"\0"))
    out = [b"\0" * lead]
    for piece in _pieces(data[lead:]):
        text = decode(piece.split(b"\0", 1)[0])
        cut = find_unbracketed(text, "\n")
        if cut >= 0:
            text = text[:cut] + "\r\n"
        out.append(encode(expand(text, request, warn, limit=BANNER_LIMIT)))
    return b"".join(out)
