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

import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection
import os

from pywrap import settings
from pywrap.lean import record
from pywrap.numeric import atoi, digits_value, inet_aton, inet_pton4, inet_pton6, inet_pton6_scoped
from pywrap.text import same

TYPE_CHECKING = False  # no typing or collections import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from collections.abc import Callable

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
UNKNOWN, PARANOID = "unknown", "paranoid"
RESOLV_CONF = "/etc/resolv.conf"

Address = tuple[int, bytes]  # (family, packed address)


def format_address(family: int, packed: bytes) -> str:
    return socket.inet_ntop(family, packed)


def parse_numeric(text: str) -> Address | None:
    """getaddrinfo(AI_NUMERICHOST): inet_aton forms for IPv4 (127.1, 010.0.0.1), inet_pton for IPv6 with
    a %scope that glibc accepts."""
    v4 = inet_aton(text)
    if v4 is not None and not any(c in " \t\n\v\f\r" for c in text):
        return AF_INET, v4.to_bytes(4, "big")
    v6 = inet_pton6_scoped(text)
    if v6 is not None:
        return AF_INET6, v6
    return None


MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"
IPV6_LOOPBACK = b"\0" * 15 + b"\1"


class HostsLine(record("HostsLine", "inet inet6 any names")):
    """One /etc/hosts line, its address as glibc's nss_files reads it for each kind of query (see
    `for_family`)."""
    inet: bytes | None      # for an AF_INET query
    inet6: bytes | None     # for an AF_INET6 query
    any: Address            # for an AF_UNSPEC query: the line in its own family
    names: tuple[str, ...]  # the first is the canonical name ("" on a line without names)
    __slots__ = ()

    def for_family(self, family: int | None) -> Address | None:
        if family is None:
            return self.any
        packed = self.inet if family == AF_INET else self.inet6
        return None if packed is None else (family, packed)


def hosts_line(address: str, names: tuple[str, ...]) -> HostsLine | None:
    """nss_files' reading of the address field. An AF_INET query takes an IPv4 line, and an IPv6 line
    that is IPv4-mapped (as its IPv4 address) or ::1 (as 127.0.0.1); an AF_INET6 query takes IPv6 lines
    only. inet_pton, not inet_aton: `127.1`, `010.0.0.1` and `fe80::1%lo` are no addresses here."""
    v4 = inet_pton4(address)
    if v4 is not None:
        return HostsLine(v4, None, (AF_INET, v4), names)
    v6 = inet_pton6(address)
    if v6 is None:
        return None
    inet = v6[12:] if v6[:12] == MAPPED_PREFIX else b"\x7f\0\0\1" if v6 == IPV6_LOOPBACK else None
    return HostsLine(inet, v6, (AF_INET6, v6), names)


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
            if line.for_family(family) == (family, packed):
                return line.names[0]
        return None

    def by_name(self, name: str, family: int | None) -> tuple[str, list[Address]] | None:
        """getaddrinfo's answer from the file: every line that names the host counts, the first one
        gives the canonical name (family None: AF_UNSPEC)."""
        canonical: str | None = None
        found: list[Address] = []
        for line in self.lines():
            address = line.for_family(family)
            if address is not None and any(same(name, n) for n in line.names):
                canonical = line.names[0] if canonical is None else canonical
                found.append(address)
        return None if canonical is None else (canonical, found)


def parse_hosts(data: bytes) -> list[HostsLine]:
    """/etc/hosts as glibc reads it: a line ends at a newline or, being a C string, at a NUL; `#` starts
    a comment; fields are split at C blanks only (bytes.split: not at \\xa0 or \\x85); a line with an
    address and no name names the host ""."""
    result = []
    for raw in data.split(b"\n"):
        fields = raw.split(b"\0", 1)[0].partition(b"#")[0].split()
        if not fields:
            continue
        names = tuple(f.decode("latin-1") for f in fields[1:]) or ("",)
        line = hosts_line(fields[0].decode("latin-1"), names)
        if line is not None:
            result.append(line)
    return result


HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def valid_hostname(name: str) -> bool:
    """What glibc accepts from a PTR record (res_hnok): labels of letters, digits, '-' and '_', not starting
    with '-'. Anything else (blanks, quotes, `$`, `;`, control bytes: dnspython shows them escaped with a
    backslash) is dropped, as libc drops it, so the client is "unknown"."""
    if not name or len(name) > 253 or name.startswith("-"):
        return False
    return all(label and set(label) <= HOSTNAME_CHARS for label in name.split("."))


class ResolvConf:
    """What /etc/resolv.conf says (glibc's defaults where it says nothing)."""

    def __init__(self, nameservers: list[tuple[str, int]], search: list[str]) -> None:
        self.nameservers = nameservers  # (address, port)
        self.search = search
        self.ndots = 1
        self.timeout = 5.0   # per try, as glibc's `options timeout:`
        self.attempts = 2    # rounds over the servers, as glibc's `options attempts:`


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
            conf.nameservers.append((fields[1], 53))
        elif fields[0] in ("search", "domain"):
            conf.search = fields[1:]
        elif fields[0] == "options":
            for opt in fields[1:]:
                name, colon, value = opt.partition(":")
                if colon:
                    _set_option(conf, name, value)
    if settings.DNS_SERVERS:
        conf.nameservers = parse_servers(settings.DNS_SERVERS)
    if not conf.nameservers:
        conf.nameservers = [("127.0.0.1", 53)]
    return conf


def _set_option(conf: ResolvConf, name: str, value: str) -> None:
    """glibc's res_setoptions: the number is atoi's (`ndots:2x` is 2, `ndots:x` is 0, 30 digits saturate
    and narrow to -1), capped at 15, 30 and 5. ndots lands in a 4-bit field (-1 is 15); a timeout or
    attempts below 1 count as 1 here (glibc waits 1 s for a timeout of 0, and makes no query at all
    for 0 attempts, which would make every name unknown)."""
    if name == "ndots":
        conf.ndots = min(atoi(value), 15) & 15
    elif name == "timeout":
        conf.timeout = float(max(min(atoi(value), 30), 1))
    elif name == "attempts":
        conf.attempts = max(min(atoi(value), 5), 1)


def parse_servers(text: str) -> list[tuple[str, int]]:
    """The DNS_SERVERS setting: "ADDR[#PORT] ..." (the port after '#', as dnsmasq writes it; 53 when it
    is no port number)."""
    servers = []
    for item in text.split():
        address, _, port = item.partition("#")
        number = digits_value(port, 10) if port.isascii() and port.isdigit() else 0
        servers.append((address, number if 0 < number <= 65535 else 53))
    return servers


class Deadline:
    """One time budget shared by every query of a lookup (reverse and forward together)."""

    def __init__(self, seconds: float) -> None:
        import time

        self._clock = time.monotonic
        self.seconds = seconds
        self.end = self._clock() + seconds

    def remaining(self) -> float:
        return self.end - self._clock()


class DnsClient:
    """A small stub resolver on dnspython: UDP to the configured servers in turn, glibc's per-try timeout
    and attempts, all within the caller's Deadline. Timeouts and server failures are reported through
    `report` (NXDOMAIN is an answer, not a failure)."""

    def __init__(self, conf: ResolvConf, report: Callable[[str], None] | None = None) -> None:
        self.conf = conf
        self.report = report or (lambda text: None)

    def query(self, qname: str, rdtype: str, deadline: Deadline):
        """The answer message for qname/rdtype (NOERROR or NXDOMAIN), or None."""
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        try:
            message = dns.message.make_query(qname, rdtype)
        except (dns.exception.DNSException, ValueError):
            return None
        failures: list[str] = []
        for _ in range(self.conf.attempts):
            for server, port in self.conf.nameservers:
                remaining = deadline.remaining()
                if remaining <= 0:
                    failures.append(f"no answer within {deadline.seconds:g} s")
                    self._report(qname, rdtype, failures)
                    return None
                try:
                    reply = self._ask(message, server, port, min(self.conf.timeout, remaining))
                except dns.exception.Timeout:
                    failures.append(f"{server} did not answer")
                    continue
                except (OSError, dns.exception.DNSException, ValueError) as e:
                    failures.append(f"{server}: {getattr(e, 'strerror', None) or type(e).__name__}")
                    continue
                if reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return reply
                failures.append(f"{server} answered {dns.rcode.to_text(reply.rcode())}")
        self._report(qname, rdtype, failures)
        return None

    @staticmethod
    def _ask(message, server: str, port: int, timeout: float):
        import dns.query

        family = AF_INET6 if ":" in server else AF_INET
        import socket as socket_module  # dnspython needs the full module anyway

        with socket_module.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect((server, port))  # connected: a closed port fails at once (ICMP), no waiting
            return dns.query.udp(message, server, port=port, timeout=timeout, sock=sock)

    def _report(self, qname: str, rdtype: str, failures: list[str]) -> None:
        unique = list(dict.fromkeys(failures))
        self.report(f"DNS lookup failed: {rdtype} {qname.rstrip('.')}: {'; '.join(unique)}")

    def candidates(self, name: str) -> list[str]:
        if name.endswith("."):
            return [name]
        searched = [f"{name}.{domain}." for domain in self.conf.search]
        if name.count(".") >= self.conf.ndots:
            return [name + ".", *searched]
        return [*searched, name + "."]

    def forward(self, name: str, family: int | None, deadline: Deadline) -> tuple[str, list[Address]] | None:
        import dns.rdatatype

        types = {AF_INET: ["A"], AF_INET6: ["AAAA"], None: ["AAAA", "A"]}[family]
        for qname in self.candidates(name):
            canonical: str | None = None
            found: list[Address] = []
            for rdtype in types:
                reply = self.query(qname, rdtype, deadline)
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
            if deadline.remaining() <= 0:
                return None
        return None

    def reverse(self, family: int, packed: bytes, deadline: Deadline) -> str | None:
        import dns.rdatatype
        import dns.reversename

        qname = dns.reversename.from_address(format_address(family, packed)).to_text()
        reply = self.query(qname, "PTR", deadline)
        if reply is None:
            return None
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.PTR:
                for rdata in rrset:  # like libc: the first PTR that is a valid host name
                    target = rdata.target.to_text(omit_final_dot=True)
                    if valid_hostname(target):
                        return target
        return None


class Resolver:
    """/etc/hosts, then DNS. `lookup_deadline()` opens the time budget that every DNS query of one lookup
    (a double-reverse check, or a name given to tcpdmatch) shares."""

    def __init__(self, hosts_path: str | None = None, resolv_conf: str = RESOLV_CONF,
                 report: Callable[[str], None] | None = None) -> None:
        self.hosts = HostsFile(hosts_path or settings.HOSTS_FILE)
        self.resolv_conf = resolv_conf
        self.report = report
        self._dns: DnsClient | None = None
        self.deadline: Deadline | None = None

    @property
    def dns(self) -> DnsClient:
        if self._dns is None:
            self._dns = DnsClient(read_resolv_conf(self.resolv_conf), self.report)
        return self._dns

    def _deadline(self) -> Deadline:
        if self.deadline is None or self.deadline.remaining() <= 0:
            return Deadline(settings.DNS_TIMEOUT)
        return self.deadline

    def lookup_deadline(self) -> Deadline:
        self.deadline = Deadline(settings.DNS_TIMEOUT)
        return self.deadline

    def reverse(self, family: int, packed: bytes) -> str | None:
        name = self.hosts.by_address(family, packed)
        if name is not None:
            return name
        return self.dns.reverse(family, packed, self._deadline())

    def forward(self, name: str, family: int | None) -> tuple[str, list[Address]] | None:
        found = self.hosts.by_name(name, family)
        if found is not None:
            return found
        return self.dns.forward(name, family, self._deadline())


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
        import socket as socket_module

        with socket_module.socket(family, socket.SOCK_DGRAM) as probe:
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


def verified_name(resolver: Resolver, family: int, packed: bytes, warn: Callable[[str], None],
                  scope: int = 0) -> str:
    """The reference's double-reverse check for one address (IPv4-mapped addresses already unmapped),
    within one DNS time budget (settings.DNS_TIMEOUT) for the reverse and the forward lookup together.
    `scope` is the peer's sin6_scope_id (a link-local peer's interface): the reverse lookup ignores it,
    the reference's comparison does not, and no forward answer (DNS, or /etc/hosts, where a scoped line
    is no address) carries one, so a scoped peer never verifies."""
    resolver.lookup_deadline()
    candidate = resolver.reverse(family, packed)
    if candidate is None:
        return UNKNOWN
    candidate = candidate[: settings.STRING_LENGTH - 1]
    numeric = parse_numeric(candidate)
    if numeric is not None and numeric[0] == family:
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
    if scope == 0 and (family, packed) in addresses:
        return candidate
    warn(f"host name/address mismatch: {numeric_host(family, packed, scope)} != {canonical}")
    return PARANOID


def numeric_host(family: int, packed: bytes, scope: int = 0) -> str:
    """getnameinfo(NI_NUMERICHOST) of the address: with a scope, `fe80::1%eth0` (or `%7`), as the C library
    writes it."""
    if scope == 0:
        return format_address(family, packed)
    return socket.getnameinfo((format_address(family, packed), 0, 0, scope), socket.NI_NUMERICHOST)[0]


def endpoint_name(resolver: Resolver, sockaddr: Address, warn: Callable[[str], None], scope: int = 0) -> str:
    """The verified name of a socket address (an IPv4-mapped one is checked as the IPv4 it carries; `scope`
    is an IPv6 peer's sin6_scope_id)."""
    family, packed = unmap(*sockaddr)
    return verified_name(resolver, family, packed, warn, scope if family == AF_INET6 else 0)


def unmap(family: int, packed: bytes) -> Address:
    """An IPv4-mapped IPv6 address becomes the IPv4 address it carries."""
    if family == AF_INET6 and packed[:12] == b"\0" * 10 + b"\xff\xff":
        return AF_INET, packed[12:]
    return family, packed
