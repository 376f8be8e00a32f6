"""Byte-faithful text helpers shared by the parser and the matcher.

Files and command-line values are bytes; we carry them as latin-1 `str` so every byte maps to one character
and back. Comparisons follow the C locale the reference runs in: only ASCII letters fold case.
"""

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(s: str) -> str:
    """ASCII-only lower case (C tolower in the C locale; 'À' stays 'À')."""
    return s.translate(_ASCII_LOWER)


def same(a: str, b: str) -> bool:
    """strcasecmp(a, b) == 0 in the C locale."""
    return a.translate(_ASCII_LOWER) == b.translate(_ASCII_LOWER)


def decode(data: bytes) -> str:
    return data.decode("latin-1")


def encode(s: str) -> bytes:
    return s.encode("latin-1", "replace")


def truncate(s: str, size: int = 128) -> str:
    """What fits in one of the reference's fixed buffers of `size` bytes (one is the NUL)."""
    return s[: size - 1]


def find_unbracketed(text: str, delimiter: str, start: int = 0) -> int:
    """Index of the first `delimiter` at or after `start` outside square brackets, or -1.

    "Outside" is the reference's plain depth counter: `[` adds one, `]` takes one away (it may go negative),
    and the delimiter counts only at depth 0 — so an unclosed `[` hides every later delimiter.
    """
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == delimiter and depth == 0:
            return i
    return -1


def split_unbracketed(token: str, delimiter: str, start: int = 0) -> tuple[str, str] | None:
    """(before, after) around the first unbracketed `delimiter` at or after `start`, or None."""
    i = find_unbracketed(token, delimiter, start)
    return None if i < 0 else (token[:i], token[i + 1:])


LIST_SEPARATORS = ", \t\r\n"   # how tcpd splits a daemon or client list
TCPDCHK_SEPARATORS = ", \t\n"   # how tcpdchk splits one: a CR stays part of the token
_TO_BLANK = {ord(c): " " for c in LIST_SEPARATORS}


def split_list(text: str, separators: str = LIST_SEPARATORS) -> list[str]:
    """The runs of non-separator characters (what the grammar's list tokens are, without pyparsing)."""
    table = _TO_BLANK if separators == LIST_SEPARATORS else {ord(c): " " for c in separators}
    return [token for token in text.translate(table).split(" ") if token]


def plain_fields(text: str) -> tuple[str, str, None] | None:
    """(daemon list, client list, None) of a line with exactly one `:` and no brackets — what the grammar's
    split_fields gives for it — else None (the grammar splits it). Lets tcpdchk read plain tables without
    loading pyparsing (or re)."""
    if "[" in text or "]" in text or text.count(":") != 1:
        return None
    daemons, _, clients = text.partition(":")
    return daemons, clients, None
