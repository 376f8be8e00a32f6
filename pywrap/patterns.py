"""Does a pattern match? The reference's daemon, host and user pattern semantics, as pure functions.

Contract: `Matcher(request, diag)` answers `daemon_list(PatternList)` and `client_list(PatternList)`.
It asks the request for facts (`client.name`, `user`, ...) only when a pattern needs them, in the order
the reference asks, so lookups happen exactly when the reference's would. Pattern order of tests in
`host_match`: @netgroup, /file, KNOWN, LOCAL, net/mask, then string match on the address and, for patterns
with anything but digits, dots and slashes, on the name. See ../shared/spec/rule-language.md §5-§8.
"""

from __future__ import annotations

import os

from pywrap import settings
from pywrap.numeric import (
    INADDR_NONE,
    atoi,
    dot_quad_addr,
    inet_pton6_scoped,
    scan_unsigned,
    strip_mapped,
)
from pywrap.request import known_name
from pywrap.rules import PatternList
from pywrap.text import fold, same, split_unbracketed

TYPE_CHECKING = False  # no `typing` import at run time: it is on tcpd's per-connection path
if TYPE_CHECKING:
    from collections.abc import Callable

    from pywrap.diag import Diagnostics
    from pywrap.request import Endpoint, Request

UNKNOWN = "unknown"
NUMERIC_CHARS = frozenset("0123456789./")


class RuleError(Exception):
    """A pattern could not be evaluated safely (e.g. /file lists nested in a loop): the request is denied."""


def list_matches(plist: PatternList, test: Callable[[str], bool]) -> bool:
    """The reference's list_match with EXCEPT, iteratively: patterns are tried left to right and lazily."""
    negate = False
    level: PatternList | None = plist
    while level is not None:
        if not any(test(p) for p in level.patterns):
            return negate
        if level.exceptions is None:
            return not negate
        negate = not negate
        level = level.exceptions
    return negate


def glob_match(pattern: str, value: str) -> bool:
    """`*` any run, `?` one character, whole value, ASCII case-insensitive; linear backtracking."""
    p, v = fold(pattern), fold(value)
    pi = vi = 0
    star_p, star_v = -1, 0
    while vi < len(v):
        if pi < len(p) and (p[pi] == "?" or (p[pi] != "*" and p[pi] == v[vi])):
            pi += 1
            vi += 1
        elif pi < len(p) and p[pi] == "*":
            star_p, star_v = pi, vi
            pi += 1
        elif star_p >= 0:
            pi = star_p + 1
            star_v += 1
            vi = star_v
        else:
            return False
    while pi < len(p) and p[pi] == "*":
        pi += 1
    return pi == len(p)


def string_match(pattern: str, value: str) -> bool:
    value = strip_mapped(value)
    if "*" in pattern or "?" in pattern:
        return glob_match(pattern, value)
    if pattern.startswith("."):
        return len(value) > len(pattern) and fold(value).endswith(fold(pattern))
    if same(pattern, "ALL"):
        return True
    if same(pattern, "KNOWN"):
        return not same(value, UNKNOWN)
    if pattern.endswith("."):
        return fold(value).startswith(fold(pattern))
    if len(pattern) >= 2 and pattern.startswith("[") and pattern.endswith("]"):
        # both sides as getaddrinfo reads them: a valid %scope is allowed on either, and ignored
        wanted = inet_pton6_scoped(pattern[1:-1])
        return wanted is not None and inet_pton6_scoped(value) == wanted
    return same(pattern, value)


def _v4_mask(mask_text: str) -> int | None:
    mask = dot_quad_addr(mask_text)
    if mask != INADDR_NONE:
        return mask
    bits = atoi(mask_text)
    if not 1 <= bits <= 32:
        return None
    return (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF


def masked_match(net: str, mask: str, address: str) -> bool:
    """net/mask against an address string: the IPv4 test or the IPv6 test (rule-language.md §7.1)."""
    return _masked_match4(net, mask, strip_mapped(address)) or _masked_match6(net, mask, address)


def _masked_match4(net_text: str, mask_text: str, address: str) -> bool:
    addr = dot_quad_addr(address)
    if addr == INADDR_NONE:
        return False
    net = dot_quad_addr(net_text)
    if net == INADDR_NONE:
        return False
    mask = _v4_mask(mask_text)
    if mask is None:
        return False
    return (addr & mask) == net  # the net is not masked: host bits in it mean "never"


def _masked_match6(net_text: str, mask_text: str, address: str) -> bool:
    if strip_mapped(address) != address:
        return False
    addr = inet_pton6_scoped(address)  # a link-local peer's address carries its %scope
    if addr is None:
        return False
    if not (len(net_text) >= 2 and net_text.startswith("[") and net_text.endswith("]")):
        return False
    net = inet_pton6_scoped(net_text[1:-1])
    if net is None:
        return False
    bits = atoi(mask_text)
    if not 0 <= bits <= 128:
        return False
    keep = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
    return int.from_bytes(addr, "big") & keep == int.from_bytes(net, "big") & keep


class Matcher:
    """Matches one request's endpoints, daemon and user against patterns. Not thread-safe; one per request."""

    def __init__(self, request: Request, diag: Diagnostics,
                 netgroup: Callable[[str, str], bool] | None = None) -> None:
        self.request = request
        self.diag = diag
        self.netgroup = netgroup or _innetgr
        self.file_depth = 0

    # daemon side -------------------------------------------------------------------------------
    def daemon_list(self, plist: PatternList) -> bool:
        return list_matches(plist, self.daemon_token)

    def daemon_token(self, token: str) -> bool:
        parts = split_unbracketed(token, "@", 1)
        if parts is None:
            return self.daemon_or_port(token)
        return self.daemon_or_port(parts[0]) and self.host_match(parts[1], self.request.server)

    def daemon_or_port(self, pattern: str) -> bool:
        port = scan_unsigned(pattern)
        if port is not None and port <= 65535:
            server_port = self.request.server.port
            return server_port is not None and server_port == port
        return string_match(pattern, self.request.daemon)

    # client side -------------------------------------------------------------------------------
    def client_list(self, plist: PatternList) -> bool:
        return list_matches(plist, self.client_token)

    def client_token(self, token: str) -> bool:
        parts = split_unbracketed(token, "@", 1)
        if parts is None:
            return self.host_match(token, self.request.client)
        user_pattern, host_pattern = parts
        return self.host_match(host_pattern, self.request.client) and string_match(
            user_pattern, self.request.user)

    def host_match(self, pattern: str, endpoint: Endpoint) -> bool:
        if pattern.startswith("@"):
            return self.netgroup(pattern[1:], endpoint.name)
        if pattern.startswith("/"):
            return self.file_list(pattern, endpoint)
        if same(pattern, "KNOWN"):
            return not same(endpoint.address, UNKNOWN) and known_name(endpoint.name)
        if same(pattern, "LOCAL"):
            name = endpoint.name
            return "." not in name and known_name(name)
        net_mask = split_unbracketed(pattern, "/")
        if net_mask is not None:
            return masked_match(net_mask[0], net_mask[1], endpoint.address)
        if string_match(pattern, endpoint.address):
            return True
        if set(pattern) <= NUMERIC_CHARS:
            return False
        return string_match(pattern, endpoint.name)

    def file_list(self, path: str, endpoint: Endpoint) -> bool:
        """A /file pattern: whitespace-separated host patterns, first match wins; missing file = no match."""
        from pywrap.tables import Refused, read_regular

        try:
            data = read_regular(path)  # never blocks (a FIFO), never more than TABLE_MAX_BYTES
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            return False
        except Refused as e:  # fail closed: "no match" would let everybody in through an EXCEPT or hosts.deny
            raise RuleError(f"{path}: {e}: access denied") from None
        except OSError as e:
            self.diag.warning(f"open {path}: {os.strerror(e.errno or 0)}")
            return False
        if self.file_depth >= settings.MAX_FILE_LIST_DEPTH:
            limit = settings.MAX_FILE_LIST_DEPTH
            raise RuleError(f"{path}: /file lists nested deeper than {limit} (a loop?)")
        self.file_depth += 1
        try:
            for raw in data.split():
                token = raw.split(b"\0", 1)[0].decode("latin-1")
                if self.host_match(token, endpoint):
                    return True
            return False
        finally:
            self.file_depth -= 1


def _innetgr(group: str, host: str) -> bool:
    from pywrap.netgroup import innetgr

    return innetgr(group, host)
