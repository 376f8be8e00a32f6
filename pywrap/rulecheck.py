"""tcpdchk's checks of one rule's daemon and client lists, worded and ordered as Debian's tcpdchk.

Contract: `RuleChecker(diag, inetconf, resolver, check_names)` with `daemon_list(text)` and
`client_list(text)` (the raw list fields) emits the reference's warnings through `diag` (its context names
the table and line).
Host patterns are checked like the reference: netgroups must have members, /file lists are read and every
token checked (and, the reference's quirk, the rest of the list after an opened /file is not) as deep as
the matcher follows them (MAX_FILE_LIST_DEPTH; deeper is an error, as tcpd denies there, where the
reference recurses until it crashes), net/mask syntax, FAIL, names resolved with the double-reverse check
(bounded by a total time budget, and skipped with check_names=False), numbers reverse-resolved.
Nothing here decides access.
The first DNS failure (timeout, unreachable server, SERVFAIL; NXDOMAIN is an answer) ends DNS for the run:
later checks use /etc/hosts alone and skip what only DNS could answer; `summary()` then says so once.
"""

from __future__ import annotations

import os
import time

from pywrap import settings
from pywrap.diag import Diagnostics
from pywrap.inetconf import InetConf, Wrap
from pywrap.numeric import INADDR_NONE, atoi, dot_quad_addr, inet_pton6_scoped
from pywrap.resolver import DnsClient, Resolver, format_address, parse_numeric, verified_name
from pywrap.tables import Refused, read_regular
from pywrap.text import TCPDCHK_SEPARATORS, find_unbracketed, same, split_list

RESERVED = ("ALL", "KNOWN", "LOCAL", "UNKNOWN", "PARANOID")
NUMERIC = frozenset("0123456789.")
NAME_CHECK_BUDGET = 60.0  # seconds of name lookups for a whole run; the rest is reported, not resolved


def _fail_pair(diag: Diagnostics) -> None:
    diag.warning("FAIL is no longer recognized")
    diag.warning("(use EXCEPT or DENY instead)")


_BLANKS = bytes.maketrans(b"\t\r\n", b"   ")  # the /file tokenizer's separators, as blanks


class _TooDeep(Exception):
    """/file lists nested deeper than the matcher follows them (said where it happened)."""


class DnsDown(Exception):
    """DNS failed in this run, so the answer a check needs cannot be had (its text says why)."""


class CheckResolver(Resolver):
    """The resolver of one tcpdchk run. Its first DNS failure raises DnsDown, and from then on DNS is not
    asked again: /etc/hosts still answers, anything else raises DnsDown at once. An unreachable name server
    otherwise costs a timeout and two lines per address of a block list (issue 12, item 9)."""

    def __init__(self) -> None:
        super().__init__(report=self._failed)
        self.failure: str | None = None  # the first failure, as the DNS client words it

    def _failed(self, text: str) -> None:
        self.failure = text.removeprefix("DNS lookup failed: ")
        raise DnsDown(self.failure)

    @property
    def dns(self) -> DnsClient:
        if self.failure is not None:
            raise DnsDown(self.failure)
        return Resolver.dns.fget(self)


class RuleChecker:
    def __init__(self, diag: Diagnostics, inetconf: InetConf, resolver: CheckResolver | None = None,
                 check_names: bool = True, budget: float = NAME_CHECK_BUDGET) -> None:
        self.diag = diag
        self.inetconf = inetconf
        self.resolver = resolver or CheckResolver()
        self.check_names = check_names
        self.budget = budget
        self.deadline = time.monotonic() + budget
        self.skipped_names = 0  # not resolved: the time budget ran out
        self.dns_skipped = 0    # not resolved: DNS had failed
        self.dns_skipped_from: tuple[str, int] | None = None  # where the first of those was
        self.file_depth = 0     # /file lists being checked, one inside the other

    # daemon side -------------------------------------------------------------------------------
    def _walk(self, text: str, what: str, check) -> None:
        """Check each token of a list (EXCEPT aside); `check` returning False ends the walk early."""
        last = None
        for token in split_list(text, TCPDCHK_SEPARATORS):
            last = token
            if same(token, "EXCEPT"):
                continue
            if check(token) is False:
                return
        if last is None or same(last, "EXCEPT"):
            self.diag.warning(f"{what} list is empty or ends in EXCEPT")

    def daemon_list(self, text: str) -> None:
        self._walk(text, "daemon", self._daemon_token)

    def _daemon_token(self, token: str) -> bool:
        at = find_unbracketed(token, "@", 1)
        count = 1
        if at >= 0:
            host = token[at + 1:]
            count = self.host(host)
            if count > 1:
                self.diag.warning(f"host {host} has more than one address")
                self.diag.warning("(consider using an address instead)")
            token = token[:at]
        self.daemon(token)
        return count >= 0  # after an opened daemon@/file the rest of the list goes unchecked, as in Debian

    def _odd_shape(self, pattern: str, what: str) -> bool:
        """The reference's first checks of a daemon or user name; True when one of them warned."""
        if pattern.startswith(("@", "/")):
            self.diag.warning(f'{pattern}: {what} name begins with "{pattern[0]}"')
        elif pattern.startswith("."):
            self.diag.warning(f"{pattern}: {what} name begins with dot")
        elif pattern.endswith("."):
            self.diag.warning(f"{pattern}: {what} name ends in dot")
        else:
            return False
        return True

    def daemon(self, pattern: str) -> None:
        if self._odd_shape(pattern, "daemon"):
            pass
        elif same(pattern, "ALL") or same(pattern, "unknown"):
            pass
        elif same(pattern, "FAIL"):
            _fail_pair(self.diag)
        elif any(same(pattern, word) for word in ("KNOWN", "LOCAL", "PARANOID")):
            self.diag.warning(f"{pattern}: daemon name may be reserved word")
        else:
            status = self.inetconf.get(pattern)
            if status == Wrap.UNKNOWN:
                self.diag.warning(f"{pattern}: no such process name in {self.inetconf.path or '(null)'}")
                self.inetconf.set(pattern, Wrap.WRAPPED)  # say it once per name
            elif status == Wrap.NOT_WRAPPED:
                self.diag.warning(f"{pattern}: service possibly not wrapped")
                self.inetconf.set(pattern, Wrap.WRAPPED)

    # client side -------------------------------------------------------------------------------
    def client_list(self, text: str) -> None:
        self._walk(text, "client", self._client_token)

    def _client_token(self, token: str) -> bool:
        at = find_unbracketed(token, "@", 1)
        if at >= 0:
            self.user(token[:at])
            token = token[at + 1:]
        # the reference's quirk: an opened /file list ends the check of the rest of this list
        return self.host(token) >= 0

    def user(self, pattern: str) -> None:
        if self._odd_shape(pattern, "user"):
            pass
        elif any(same(pattern, word) for word in ("ALL", "KNOWN", "unknown")):
            pass
        elif same(pattern, "FAIL"):
            _fail_pair(self.diag)
        elif same(pattern, "PARANOID") or same(pattern, "LOCAL"):
            self.diag.warning(f"{pattern}: user name may be reserved word")

    def host(self, pattern: str) -> int:
        """Check one host pattern; the number of addresses it stands for (1 unless it was resolved),
        -1 after a /file list that could be opened."""
        if pattern.startswith("@"):
            from pywrap.netgroup import netgroup_has_members

            if not netgroup_has_members(pattern[1:]):
                self.diag.warning(f"{pattern[1:]}: unknown or empty netgroup")
            return 1
        if pattern.startswith("/"):
            return self.file_list(pattern)
        slash = find_unbracketed(pattern, "/")
        if slash >= 0:
            net, mask = pattern[:slash], pattern[slash + 1:]
            if not _good_net_mask(net, mask):
                self.diag.warning(f"{net}/{mask}: bad net/mask pattern")
            return 1
        if same(pattern, "FAIL"):
            _fail_pair(self.diag)
            return 1
        if any(same(pattern, word) for word in RESERVED):
            return 1
        if _bracketed_ipv6(pattern):
            return 1
        if not set(pattern) <= NUMERIC:  # a name
            if pattern.endswith("."):
                self.diag.warning(f"{pattern}: domain or host name ends in dot")
                return 1
            if pattern.startswith("."):
                return 1
            return self.dns(pattern)
        if pattern in ("0.0.0.0", "255.255.255.255"):
            return 1
        if pattern.startswith("."):
            self.diag.warning(f"{pattern}: network number begins with dot")
            return 1
        if pattern.endswith("."):
            return 1
        return self.dns(pattern)

    def file_list(self, path: str) -> int:
        try:
            data = read_regular(path)  # bounded, never waits on a FIFO: tcpd's own reader
        except FileNotFoundError:
            return 1
        except IsADirectoryError:
            return 1  # opens, but no line is ever read from it
        except Refused as e:
            self.diag.error(f"{path}: {e}: tcpd denies every client this list is asked about")
            return 1
        except OSError as e:
            self.diag.warning(f"open {path}: {os.strerror(e.errno or 0)}")
            return 1
        if self.file_depth:
            return self._file_lines(path, data)
        try:
            return self._file_lines(path, data)
        except _TooDeep:  # said where it happened; as after any list that was read, the rule's list ends
            return -1

    def _file_lines(self, path: str, data: bytes) -> int:
        """Check each token of a /file list, as deep as the matcher follows them (then _TooDeep)."""
        limit = settings.MAX_FILE_LIST_DEPTH
        if self.file_depth >= limit:  # the matcher's bound, and its words
            self.diag.error(f"{path}: /file lists nested deeper than {limit} (a loop?): tcpd denies every "
                            "client this list is asked about")
            raise _TooDeep  # ends every list above it too: a list naming itself twice would be 2**32 lists
        lines = _fgets_lines(data)
        self.file_depth += 1
        try:
            for number, raw in enumerate(lines, start=1):
                with self.diag.in_context(path, number):
                    for token in raw.translate(_BLANKS).split(b" "):
                        # a nested /file that was read ends this line too (the same strtok() quirk)
                        if token and self.host(token.decode("latin-1")) < 0:
                            break
        finally:
            self.file_depth -= 1
        # the reference reads the file with the same strtok() as the list: once a line was read, the
        # list's own tokenizing is lost and the rest of the list goes unchecked
        return -1 if lines else 1

    def dns(self, host: str) -> int:
        """Resolve a name or number, warn like the reference, double-reverse check every address. What
        only a failed DNS could have answered is skipped silently (a failure is no finding about the rule);
        what was said before the failure came from real answers and stands."""
        if not self.check_names:
            return 1
        if time.monotonic() > self.deadline:
            self.skipped_names += 1
            return 1
        try:
            addresses = self._find_addresses(host)
        except DnsDown:
            self._dns_skipped()
            return 1
        for family, packed in addresses:
            try:
                name = verified_name(self.resolver, family, packed, self.diag.warning)
            except DnsDown:
                self._dns_skipped()
                break
            if name == "unknown":
                self.diag.warning(f"host address {format_address(family, packed)}->name lookup failed")
        return len(addresses)

    def _dns_skipped(self) -> None:
        self.dns_skipped += 1
        if self.dns_skipped_from is None:
            self.dns_skipped_from = self.diag.context

    def summary(self) -> None:
        """After the tables: say once which name checks were left out, and why (the findings stay visible)."""
        if self.dns_skipped:
            where = "{}, line {}".format(*self.dns_skipped_from) if self.dns_skipped_from else "the start"
            self.diag.warning(f"name checks skipped from {where} on ({self.dns_skipped} names and "
                              f"addresses): DNS failed ({self.resolver.failure})")
        if self.skipped_names:
            self.diag.warning(f"name checks stopped after {self.budget:g} s: {self.skipped_names} more names "
                              "and addresses were not resolved (--no-dns skips them all)")

    def _find_addresses(self, host: str) -> list[tuple[int, bytes]]:
        numeric = parse_numeric(host)
        if numeric is not None:
            return [numeric]
        self.resolver.lookup_deadline()
        found = self.resolver.forward(host, None) if "\0" not in host else None
        if found is None:
            self.diag.warning(f"{host}: host not found")
            return []
        canonical, addresses = found
        if not same(canonical, host):
            self.diag.warning(f"{host}: hostname alias")
            self.diag.warning(f"(official name: {canonical[:127]})")
        return addresses


def _good_net_mask(net: str, mask: str) -> bool:
    if dot_quad_addr(net) != INADDR_NONE:
        return dot_quad_addr(mask) != INADDR_NONE or 1 <= atoi(mask) <= 32
    if _bracketed_ipv6(net):
        return 0 <= atoi(mask) <= 128
    return False


def _bracketed_ipv6(text: str) -> bool:
    """`[address]` as the reference reads it, with getaddrinfo: a %scope glibc accepts (`[fe80::1%eth0]`,
    as a link-local client is written) is part of the address, so such a pattern is no name to look up."""
    return len(text) >= 2 and text.startswith("[") and text.endswith("]") \
        and inet_pton6_scoped(text[1:-1]) is not None


def _fgets_lines(data: bytes, size: int = 8192) -> list[bytes]:
    """fgets(buf, BUFSIZ) pieces, each cut at a NUL as strtok would see it."""
    out, pos = [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + size - 1)
        end = pos + size - 1 if nl < 0 else nl + 1
        out.append(data[pos:end].split(b"\0", 1)[0])
        pos = end
    return out
