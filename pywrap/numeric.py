"""Numbers and addresses parsed exactly as the C library calls of the reference parse them.

inet_addr (octal and hex parts, short forms), the "dotted quad" test in front of it, atoi, scanf's %u,
%d and %o, and inet_pton for IPv6. Pure functions; no I/O.
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection

INADDR_NONE = 0xFFFFFFFF
C_SPACE = " \t\n\v\f\r"


def strtoul_prefix(s: str, base: int = 0) -> tuple[int, int] | None:
    """strtoul(s, &end, base) for s starting at a digit (no sign, no blanks): (value, chars used).
    Saturates like glibc (ULONG_MAX on overflow). None when nothing is consumed."""
    i = 0
    if base == 0:
        if s[:2] in ("0x", "0X") and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
            base, i = 16, 2
        elif s[:1] == "0":
            base = 8
        else:
            base = 10
    digits = "0123456789abcdef"[:base]
    start = i
    while i < len(s) and s[i].lower() in digits:
        i += 1
    if i == start:
        return None
    return min(int(s[start:i], base), 2**64 - 1), i


def inet_aton(s: str) -> int | None:
    """glibc inet_aton: 1 to 4 parts, each decimal, 0octal or 0xhex; the last fills the remaining bytes;
    trailing C whitespace allowed. Returns the address as a host-order integer."""
    parts: list[int] = []
    pos = 0
    while True:
        if pos >= len(s) or not s[pos].isdigit() or not s[pos].isascii():
            return None
        parsed = strtoul_prefix(s[pos:])
        if parsed is None:
            return None
        value, used = parsed
        if value > 0xFFFFFFFF:
            return None
        pos += used
        if pos < len(s) and s[pos] == ".":
            if len(parts) > 2 or value > 0xFF:
                return None
            parts.append(value)
            pos += 1
        else:
            break
    if pos < len(s) and s[pos] not in C_SPACE:
        return None
    limit = (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)[len(parts)]
    if value > limit:
        return None
    result = 0
    for n, part in enumerate(parts):
        result |= part << (24 - 8 * n)
    return result | value


def dot_quad_addr(s: str) -> int:
    """The reference's dot_quad_addr: exactly four runs of non-dots, then inet_addr; INADDR_NONE on failure
    (so 255.255.255.255 is indistinguishable from an error, as in the reference)."""
    runs, in_run = 0, False
    for c in s:
        if c == ".":
            in_run = False
        elif not in_run:
            in_run = True
            runs += 1
    if runs != 4:
        return INADDR_NONE
    value = inet_aton(s)
    return INADDR_NONE if value is None else value


def atoi(s: str) -> int:
    """C atoi (glibc: (int) strtol, saturating then truncated to 32 bits)."""
    i = 0
    while i < len(s) and s[i] in C_SPACE:
        i += 1
    sign = 1
    if i < len(s) and s[i] in "+-":
        sign = -1 if s[i] == "-" else 1
        i += 1
    start = i
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    if i == start:
        return 0
    value = sign * int(s[start:i])
    value = max(-(2**63), min(2**63 - 1, value))
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def _scan_integer(s: str, base: int) -> tuple[bool, int]:
    """sscanf(s, "%<conv>%n") consuming all of s: (ok, value as unsigned long before narrowing)."""
    i = 0
    while i < len(s) and s[i] in C_SPACE:
        i += 1
    negative = False
    if i < len(s) and s[i] in "+-":
        negative = s[i] == "-"
        i += 1
    digits = "01234567" if base == 8 else "0123456789"
    start = i
    while i < len(s) and s[i] in digits:
        i += 1
    if i == start or i != len(s):
        return False, 0
    value = min(int(s[start:i], base), 2**64 - 1)
    if negative:
        value = (-value) & (2**64 - 1)
    return True, value


def scan_unsigned(s: str) -> int | None:
    """sscanf(s, "%u") that uses the whole string, narrowed to unsigned int; None if it does not parse."""
    ok, value = _scan_integer(s, 10)
    return value & 0xFFFFFFFF if ok else None


def scan_int(s: str) -> int | None:
    """sscanf(s, "%d") that uses the whole string, as a C int."""
    ok, value = _scan_integer(s, 10)
    if not ok:
        return None
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def scan_octal(s: str) -> int | None:
    """sscanf(s, "%o") that uses the whole string, as a C unsigned int."""
    ok, value = _scan_integer(s, 8)
    return value & 0xFFFFFFFF if ok else None


def inet_pton6(s: str) -> bytes | None:
    """libc inet_pton(AF_INET6, s) (no scope ids, no brackets)."""
    try:
        return socket.inet_pton(socket.AF_INET6, s)
    except (OSError, ValueError):
        return None


def inet_pton4(s: str) -> bytes | None:
    try:
        return socket.inet_pton(socket.AF_INET, s)
    except (OSError, ValueError):
        return None


def strip_mapped(value: str) -> str:
    """`::ffff:a.b.c.d` (any case) whose rest is a dotted quad -> `a.b.c.d`; anything else unchanged."""
    if value[:7].lower() == "::ffff:" and dot_quad_addr(value[7:]) != INADDR_NONE:
        return value[7:]
    return value
