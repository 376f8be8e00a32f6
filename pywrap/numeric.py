"""Numbers and addresses parsed exactly as the C library calls of the reference parse them.

inet_addr (octal and hex parts, short forms), the "dotted quad" test in front of it, atoi, scanf's %u,
%d and %o, inet_pton for IPv6 and getaddrinfo's numeric IPv6 with a %scope. Overflow is C's: strtoul
saturates at ULONG_MAX, strtol at LONG_MIN/LONG_MAX, and a digit run of any length is read without
Python's int-from-string limit (4,300 digits), because these strings come from files and peers we do
not control. Pure functions; no I/O (but for the interface-name lookup of a %scope).
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection

INADDR_NONE = 0xFFFFFFFF
C_SPACE = " \t\n\v\f\r"
ULONG_MAX = 2**64 - 1
LONG_MAX = 2**63 - 1
_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}
# ULONG_MAX has 22 octal, 20 decimal and 16 hex digits: a run with more significant digits than that
# overflows whatever they are, so it is never converted (which also keeps Python's digit limit away)
_ULONG_DIGITS = {8: 22, 10: 20, 16: 16}


def digits_value(digits: str, base: int) -> int:
    """The value of a run of ASCII digits of `base`, or ULONG_MAX + 1 when it does not fit an unsigned
    long (the callers only need to know that it overflowed)."""
    significant = digits.lstrip("0")
    if len(significant) > _ULONG_DIGITS[base]:
        return ULONG_MAX + 1
    return int(significant or "0", base)


def _digit_run(s: str, start: int, base: int) -> int:
    """Index just past the run of `base` digits that starts at `start`."""
    digits = _DIGITS[base]
    end = start
    while end < len(s) and s[end] in digits:
        end += 1
    return end


def strtoul_result(negative: bool, magnitude: int) -> int:
    """What strtoul returns for a sign and a digit run's value: ULONG_MAX on overflow, whatever the sign
    (glibc), else the value, negated modulo 2**64 after a '-'."""
    if magnitude > ULONG_MAX:
        return ULONG_MAX
    return (-magnitude) & ULONG_MAX if negative else magnitude


def strtol_result(negative: bool, magnitude: int) -> int:
    """What strtol returns: the signed value, saturated at LONG_MIN / LONG_MAX."""
    value = -magnitude if negative else magnitude
    return max(-LONG_MAX - 1, min(LONG_MAX, value))


def c_int(value: int) -> int:
    """A C long converted to int: the low 32 bits, as a signed value."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def strtoul_prefix(s: str, base: int = 0) -> tuple[int, int] | None:
    """strtoul(s, &end, base) for s starting at a digit (no sign, no blanks): (value, chars used).
    Saturates like glibc (ULONG_MAX on overflow). None when nothing is consumed."""
    i = 0
    if base == 0:
        if s[:2] in ("0x", "0X") and len(s) > 2 and s[2] in _DIGITS[16]:
            base, i = 16, 2
        elif s[:1] == "0":
            base = 8
        else:
            base = 10
    end = _digit_run(s, i, base)
    if end == i:
        return None
    return strtoul_result(False, digits_value(s[i:end], base)), end


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
    """C atoi (glibc: (int) strtol(s, NULL, 10): saturating, then narrowed to 32 bits)."""
    negative, start, end = _sign_and_digits(s, 10)
    if start == end:
        return 0
    return c_int(strtol_result(negative, digits_value(s[start:end], 10)))


def _sign_and_digits(s: str, base: int) -> tuple[bool, int, int]:
    """strto*'s reading of s: C blanks, an optional sign, then (start, end) of the digit run."""
    i = 0
    while i < len(s) and s[i] in C_SPACE:
        i += 1
    negative = False
    if i < len(s) and s[i] in "+-":
        negative = s[i] == "-"
        i += 1
    return negative, i, _digit_run(s, i, base)


def _scan_whole(s: str, base: int) -> tuple[bool, int] | None:
    """sscanf(s, "%<conv>%n") consuming all of s: (negative, magnitude), or None if it does not parse."""
    negative, start, end = _sign_and_digits(s, base)
    if start == end or end != len(s):
        return None
    return negative, digits_value(s[start:end], base)


def scan_unsigned(s: str) -> int | None:
    """sscanf(s, "%u") that uses the whole string (strtoul, narrowed to unsigned int); None if it does
    not parse."""
    scanned = _scan_whole(s, 10)
    return None if scanned is None else strtoul_result(*scanned) & 0xFFFFFFFF


def scan_int(s: str) -> int | None:
    """sscanf(s, "%d") that uses the whole string (strtol, narrowed to int)."""
    scanned = _scan_whole(s, 10)
    return None if scanned is None else c_int(strtol_result(*scanned))


def scan_octal(s: str) -> int | None:
    """sscanf(s, "%o") that uses the whole string (strtoul base 8, narrowed to unsigned int)."""
    scanned = _scan_whole(s, 8)
    return None if scanned is None else strtoul_result(*scanned) & 0xFFFFFFFF


def inet_pton6(s: str) -> bytes | None:
    """libc inet_pton(AF_INET6, s) (no scope ids, no brackets)."""
    try:
        return socket.inet_pton(socket.AF_INET6, s)
    except (OSError, ValueError):
        return None


def inet_pton6_scoped(s: str) -> bytes | None:
    """The address getaddrinfo(s, AF_INET6, AI_NUMERICHOST) gives, scope dropped: how the reference reads
    the IPv6 side of `[...]` and `[net]/prefix` patterns and of the client address (`fe80::1%eth0`, as
    getnameinfo writes a link-local peer). A %scope must be valid to glibc: an interface that exists
    (link-local addresses only) or a decimal number below 2**32; otherwise nothing parses."""
    if "%" not in s:
        return inet_pton6(s)
    packed = inet_pton6(s.partition("%")[0])
    return None if packed is None or scope_id(s) is None else packed


def scope_id(s: str) -> int | None:
    """The sin6_scope_id getaddrinfo(s, AF_INET6, AI_NUMERICHOST) gives (0 without a %scope), or None when
    it does not parse. The C library judges the scope itself: it depends on this machine's interfaces."""
    if "%" not in s:
        return 0 if inet_pton6(s) is not None else None
    try:
        infos = socket.getaddrinfo(s.encode("latin-1"), None, socket.AF_INET6, socket.SOCK_STREAM, 0,
                                   socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return infos[0][4][3]


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
