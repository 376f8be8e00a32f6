"""Host names <-> addresses, in the order of a default Debian `hosts: files dns`, with a deadline.

Contract:
- `Resolver.reverse(family, packed)` -> the name for an address, or None (what getnameinfo NI_NAMEREQD gives);
- `Resolver.forward(name, family)` -> (canonical name, [(family, packed), ...]) or None (getaddrinfo with
  AI_CANONNAME; family None means both, IPv4 and IPv6);
- `verified_name(...)` is the reference's double-reverse check (tcpd.md §4): a verified name, "unknown"
  or "paranoid", with the reference's warnings.

/etc/hosts is read first (every matching line counts, the first one names the host, as glibc does);
DNS comes after it through dnspython, imported only when a lookup really reaches DNS. DNS queries go over
connected UDP sockets, so a closed port fails at once instead of waiting for a timeout, and every lookup
has an overall deadline.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from pywrap import settings
from pywrap.numeric import inet_aton, inet_pton6
from pywrap.text import same

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
UNKNOWN, PARANOID = "unknown", "paranoid"
DNS_DEADLINE = 5.0  # seconds for one whole lookup, all name servers and search domains included
RESOLV_CONF = "/etc/resolv.conf"

Address = tuple[int, bytes]  # (family, packed address)


def format_address(family: int, packed: bytes) -> str:
    return socket.inet_ntop(family, packed)


def parse_numeric(text: str) -> Address | None:
    """getaddrinfo(AI_NUMERICHOST): inet_aton forms for IPv4 (127.1, 010.0.0.1), inet_pton for IPv6."""
    v4 = inet_aton(text)
    if v4 is not None and not any(c in " \t\n\v\f\r" for c in text):
        return AF_INET, v4.to_bytes(4, "big")
    v6 = inet_pton6(text.partition("%")[0]) if text.count("%") <= 1 else None
    if v6 is not None:
        return AF_INET6, v6
    return None


@dataclass(frozen=True, slots=True)
class HostsLine:
    family: int
    packed: bytes
    names: tuple[str, ...]  # the first is the canonical name


class HostsFile:
    """/etc/hosts, re-read whenever it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._key: tuple | None = None
        self._lines: list[HostsLine] = []

    def lines(self) -> list[HostsLine]:
        try:
            st = os.stat(self.path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            self._key, self._lines = None, []
            return self._lines
        if key != self._key:
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except OSError:
                data = b""
            self._lines, self._key = parse_hosts(data), key
        return self._lines

    def by_address(self, family: int, packed: bytes) -> str | None:
        for line in self.lines():
            if line.family == family and line.packed == packed:
                return line.names[0]
        return None

    def by_name(self, name: str, family: int | None) -> tuple[str, list[Address]] | None:
        canonical: str | None = None
        found: list[Address] = []
        for line in self.lines():
            if family is not None and line.family != family:
                continue
            if any(same(name, n) for n in line.names):
                canonical = canonical or line.names[0]
                found.append((line.family, line.packed))
        return None if canonical is None else (canonical, found)


def parse_hosts(data: bytes) -> list[HostsLine]:
    result = []
    for raw in data.decode("latin-1").splitlines():
        fields = raw.partition("#")[0].split()
        if len(fields) < 2:
            continue
        v4 = inet_aton(fields[0])
        if v4 is not None:
            result.append(HostsLine(AF_INET, v4.to_bytes(4, "big"), tuple(fields[1:])))
            continue
        v6 = inet_pton6(fields[0])
        if v6 is not None:
            result.append(HostsLine(AF_INET6, v6, tuple(fields[1:])))
    return result


def valid_hostname(name: str) -> bool:
    """What libc accepts from a PTR record (res_hnok): letters, digits, '-', '_' in dot-separated labels."""
    if not name or len(name) > 253:
        return False
    labels = name.rstrip(".").split(".")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
    return all(label and set(label) <= allowed for label in labels)


@dataclass
class ResolvConf:
    nameservers: list[str]
    search: list[str]
    ndots: int = 1


def read_resolv_conf(path: str = RESOLV_CONF) -> ResolvConf:
    conf = ResolvConf([], [])
    try:
        with open(path, encoding="latin-1") as f:
            text = f.read()
    except OSError:
        text = ""
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1 and len(conf.nameservers) < 3:
            conf.nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            conf.search = fields[1:]
        elif fields[0] == "options":
            for opt in fields[1:]:
                if opt.startswith("ndots:") and opt[6:].isdigit():
                    conf.ndots = min(int(opt[6:]), 15)
    if not conf.nameservers:
        conf.nameservers = ["127.0.0.1"]
    return conf


class DnsClient:
    """A small stub resolver on dnspython: UDP to the configured servers, one overall deadline."""

    def __init__(self, conf: ResolvConf, deadline: float = DNS_DEADLINE) -> None:
        self.conf = conf
        self.deadline = deadline

    def query(self, qname: str, rdtype: str):
        """The answer message for qname/rdtype from the first server that answers, or None."""
        import time

        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        try:
            message = dns.message.make_query(qname, rdtype)
        except (dns.exception.DNSException, ValueError):
            return None
        end = time.monotonic() + self.deadline
        for server in self.conf.nameservers:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            family = AF_INET6 if ":" in server else AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)
                    sock.connect((server, 53))
                    reply = dns.query.udp(message, server, timeout=remaining, sock=sock)
            except (OSError, dns.exception.DNSException, ValueError):
                continue
            if reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return reply
        return None

    def candidates(self, name: str) -> list[str]:
        if name.endswith("."):
            return [name]
        searched = [f"{name}.{domain}." for domain in self.conf.search]
        if name.count(".") >= self.conf.ndots:
            return [name + ".", *searched]
        return [*searched, name + "."]

    def forward(self, name: str, family: int | None) -> tuple[str, list[Address]] | None:
        import dns.rdatatype

        types = {AF_INET: ["A"], AF_INET6: ["AAAA"], None: ["AAAA", "A"]}[family]
        for qname in self.candidates(name):
            canonical: str | None = None
            found: list[Address] = []
            for rdtype in types:
                reply = self.query(qname, rdtype)
                if reply is None:
                    continue
                for rrset in reply.answer:  # CNAMEs are followed by the server; the A/AAAA owner is canonical
                    if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                        fam = AF_INET if rrset.rdtype == dns.rdatatype.A else AF_INET6
                        for rdata in rrset:
                            found.append((fam, socket.inet_pton(fam, rdata.address)))
                        canonical = canonical or rrset.name.to_text()
            if found:
                return (canonical or qname).rstrip("."), found
        return None

    def reverse(self, family: int, packed: bytes) -> str | None:
        import dns.rdatatype
        import dns.reversename

        qname = dns.reversename.from_address(format_address(family, packed)).to_text()
        reply = self.query(qname, "PTR")
        if reply is None:
            return None
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.PTR:
                target = rrset[0].target.to_text(omit_final_dot=True)
                return target if valid_hostname(target) else None
        return None


class Resolver:
    def __init__(self, hosts_path: str | None = None, resolv_conf: str = RESOLV_CONF) -> None:
        self.hosts = HostsFile(hosts_path or settings.HOSTS_FILE)
        self.resolv_conf = resolv_conf
        self._dns: DnsClient | None = None

    @property
    def dns(self) -> DnsClient:
        if self._dns is None:
            self._dns = DnsClient(read_resolv_conf(self.resolv_conf))
        return self._dns

    def reverse(self, family: int, packed: bytes) -> str | None:
        name = self.hosts.by_address(family, packed)
        if name is not None:
            return name
        return self.dns.reverse(family, packed)

    def forward(self, name: str, family: int | None) -> tuple[str, list[Address]] | None:
        found = self.hosts.by_name(name, family)
        if found is not None:
            return found
        return self.dns.forward(name, family)


def _precedence(family: int, packed: bytes) -> int:
    """glibc's built-in RFC 3484 precedence table (Debian ships gai.conf all commented out)."""
    if family == AF_INET or packed[:12] == b"\0" * 10 + b"\xff\xff":
        return 10
    if packed == b"\0" * 15 + b"\1":
        return 50
    if packed[:2] == b"\x20\x02":
        return 30
    if packed[:12] == b"\0" * 12:
        return 20
    return 40


def _usable(family: int, packed: bytes) -> bool:
    """Rule 1: a destination is usable when the kernel finds a route to it (no packet is sent)."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((format_address(family, packed), 9))
        return True
    except OSError:
        return False


def sort_addresses(addresses: list[Address]) -> list[Address]:
    """Destination order as getaddrinfo gives it, for the rules that matter here: usable first, then by
    precedence; otherwise the resolver's order."""
    if len(addresses) < 2:
        return addresses
    return sorted(addresses, key=lambda a: (not _usable(*a), -_precedence(*a)))


def verified_name(resolver: Resolver, family: int, packed: bytes, warn: Callable[[str], None]) -> str:
    """The reference's double-reverse check for one address (IPv4-mapped addresses already unmapped)."""
    candidate = resolver.reverse(family, packed)
    if candidate is None:
        return UNKNOWN
    candidate = candidate[: settings.STRING_LENGTH - 1]
    numeric = parse_numeric(candidate)
    if numeric is not None and numeric[0] == family and _is_plain_numeric(candidate, family):
        warn(f"host name/name mismatch: reverse lookup results in non-FQDN {candidate}")
        return PARANOID
    forward = resolver.forward(candidate, family)
    if forward is None:
        warn(f"can't verify hostname: getaddrinfo({candidate}, "
             f"{'AF_INET' if family == AF_INET else 'AF_INET6'}) failed")
        return PARANOID
    canonical, addresses = forward
    if not same(canonical, candidate) and not same(candidate, "localhost"):
        warn(f"host name/name mismatch: {candidate} != {canonical}")
        return PARANOID
    if (family, packed) in addresses:
        return candidate
    warn(f"host name/address mismatch: {format_address(family, packed)} != {canonical}")
    return PARANOID


def _is_plain_numeric(text: str, family: int) -> bool:
    """getaddrinfo(AI_NUMERICHOST) for one family accepts the text."""
    if family == AF_INET:
        return inet_aton(text) is not None
    return inet_pton6(text.partition("%")[0]) is not None


def unmap(family: int, packed: bytes) -> Address:
    """An IPv4-mapped IPv6 address becomes the IPv4 address it carries."""
    if family == AF_INET6 and packed[:12] == b"\0" * 10 + b"\xff\xff":
        return AF_INET, packed[12:]
    return family, packed
