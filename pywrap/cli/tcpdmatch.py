"""tcpdmatch: predict how tcpd would handle a request for a service from a client.

Usage: tcpdmatch [-d] [-i inet_conf] daemon[@server] [user@]client   (or --help)

Contract: the same command line and the same stdout as Debian's tcpdmatch, line for line (one prediction
block per client address). Unlike Debian's, which sends them to syslog only, warnings, errors, the matched
rule (`FILE, line N: matched`) and the options it runs go to stderr with their file and line. Options are
checked but change nothing in this process (Debian's really runs `user`, `group`, `umask`, `setenv`).
Exit status: 0 after the predictions (granted or denied), 1 for a client or server that cannot be
resolved, an unreadable -i file or an expansion overflow, 2 for usage errors. `--help` (not in Debian's,
which calls it an invalid option) prints the usage and a summary on stdout, exit status 0.
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` itself costs ~8 ms of start-up
import os
import sys

from pywrap import settings
from pywrap.access import decide
from pywrap.cli.common import UsageError, check_real_daemon_dir, check_tables, getopt, table_paths
from pywrap.diag import StreamDiagnostics
from pywrap.expand import ExpansionTooLong, expand
from pywrap.inetconf import Wrap, read_inetd_conf
from pywrap.numeric import scope_id
from pywrap.options import DryRun
from pywrap.request import PARANOID, UNKNOWN, Endpoint, Request, known_name
from pywrap.resolver import AF_INET6, Resolver, endpoint_name, numeric_host, sort_addresses
from pywrap.text import encode, same, split_unbracketed, truncate

TYPE_CHECKING = False  # typing costs start-up time; only checkers need it
if TYPE_CHECKING:
    from typing import BinaryIO

USAGE = """usage: {prog} [-d] [-i inet_conf] daemon[@host] [user@]host
\t-d: use allow/deny files in current directory
\t-i: location of inetd.conf file
"""

# --help: the usage above (on stdout, not stderr) and what differs from Debian's tcpdmatch
HELP = """
Predicts how tcpd would handle a request for the daemon (at the server @host) from the client host (and
user@), with the installed tables, or with -d ./hosts.allow and ./hosts.deny: one block per address of
the client on stdout, ending in "access: granted", "denied" or "delegated". Warnings, the rule that
matched and the options it would run go to stderr as "FILE, line N: ...". Options are checked, never run.
Exit status: 0 after the predictions, 1 when the client or server cannot be resolved, the -i file cannot
be read or an expansion is too long, 2 for usage errors.
"""

NUMERIC = frozenset("01234567890./")

Located = tuple[int, bytes, int]  # (family, packed address, sin6_scope_id: 0 for none and for IPv4)


class Failure(Exception):
    """Stop with exit status 1 (the message, if any, goes to stderr as is)."""


def parse_args(argv: list[str]) -> tuple[bool, str | None, list[str]] | None:
    """GNU getopt "di:" (options may follow operands, as with the reference's glibc getopt), plus --help;
    None when --help was given (it wins over everything else, as in GNU tools)."""
    options, operands = getopt(argv, "d", "i", ("help",))
    if options.get("help"):
        return None
    if len(operands) != 2:
        raise UsageError("")
    inet_conf = options.get("i")
    return bool(options.get("d")), inet_conf if isinstance(inet_conf, str) else None, operands


class TcpdMatch:
    def __init__(self, stdout: BinaryIO, stderr: BinaryIO, prog: str) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.diag = StreamDiagnostics(stderr, prog)
        self.resolver = Resolver(report=self.warn)
        self.out: list[bytes] = []  # predictions, written at the end (banners go first, as with a pipe)

    def print(self, text: str) -> None:
        self.out.append(encode(text + "\n"))

    def warn(self, text: str) -> None:
        self.diag.warning(text)

    # the two endpoints --------------------------------------------------------------------------
    def lookup(self, endpoint: Endpoint) -> str:
        assert endpoint.sockaddr is not None
        # the address text keeps a link-local server's %scope, which the double-reverse check compares too
        return endpoint_name(self.resolver, endpoint.sockaddr, self.warn, scope_id(endpoint.address) or 0)

    def resolve(self, host: str) -> list[Located]:
        """Numeric first (keeping getaddrinfo's scope: `fe80::3%lo` is a socket address on lo), then by
        name (no scope: neither DNS nor /etc/hosts gives one); warns like the reference when the name is
        an alias. `host` is the whole argument, as the reference resolves and names it."""
        try:
            # bytes: a str goes through the idna codec first, which refuses labels over 63 characters
            # (`000...01.2.3.4` is 1.2.3.4 to the C library)
            infos = socket.getaddrinfo(host.encode("latin-1"), None, 0, socket.SOCK_STREAM, 0,
                                       socket.AI_NUMERICHOST)
            return [(info[0], socket.inet_pton(info[0], info[4][0].partition("%")[0]),
                     info[4][3] if info[0] == AF_INET6 else 0) for info in infos]
        except (OSError, UnicodeError, ValueError):
            pass
        self.resolver.lookup_deadline()
        found = self.resolver.forward(host, None) if "\0" not in host else None
        if found is None:
            self.warn(f"{host}: host not found")
            raise Failure()
        canonical, addresses = found
        if not same(canonical, host):
            self.warn(f"{host}: hostname alias")
            self.warn(f"(official name: {truncate(canonical)})")
        return [(family, packed, 0) for family, packed in sort_addresses(addresses)]

    def endpoint_at(self, family: int, packed: bytes, scope: int) -> Endpoint:
        """The address as getnameinfo writes it (`fe80::3%lo`): what the reference shows and matches."""
        return Endpoint(numeric_host(family, packed, scope), 0, (family, packed), self.lookup)

    def server_endpoint(self, server: str) -> Endpoint:
        if not (set(server) <= NUMERIC or known_name(server)):
            return Endpoint(name=server)
        endpoints = [self.endpoint_at(*located) for located in self.resolve(server)]
        for endpoint in endpoints:  # every address is named (and warned about) first, as in the reference
            if endpoint.name == UNKNOWN:
                self.warn(f"host address {endpoint.address}->name lookup failed")
        if len(endpoints) > 1:
            raise Failure(f"Error: {server} has more than one address\nPlease specify an address instead\n")
        return endpoints[0]

    def client_endpoints(self, client: str):
        if is_numeric_address(client):
            # verbatim (127 bytes of it, as the request keeps), no socket address: "simulates a failed
            # reverse lookup"
            yield Endpoint(truncate(client))
            return
        if not set(client) <= NUMERIC and (same(client, UNKNOWN) or same(client, PARANOID)):
            yield Endpoint(name=client)
            return
        for family, packed, scope in self.resolve(client):
            endpoint = self.endpoint_at(family, packed, scope)
            if not (family == AF_INET6 and packed[:2] == b"\xfe\x80"):  # no check for link-local
                if endpoint.name == UNKNOWN:
                    self.warn(f"host address {endpoint.address}->name lookup failed")
            yield endpoint

    # the prediction -----------------------------------------------------------------------------
    def predict(self, request: Request, allow: str, deny: str) -> None:
        fields = (("client:   hostname ", "%n"), ("client:   address  ", "%a"), ("client:   username ", "%u"),
                  ("server:   hostname ", "%N"), ("server:   address  ", "%A"), ("server:   process  ", "%d"))
        for label, letter in fields:
            value = expand(letter, request, self.warn)
            if not same(value, UNKNOWN):
                self.print(label + value)
        effects = DryRun(write_banner=self.write_banner, warn=self.warn)
        verdict = decide(request, self.diag, effects, allow, deny)
        word = "delegated" if verdict.delegated else "granted" if verdict.granted else "denied"
        self.print(f"access:   {word}")

    def write_banner(self, data: bytes) -> None:
        self.stdout.write(data)
        self.stdout.flush()

    def flush(self) -> None:
        self.stdout.write(b"".join(self.out))
        self.stdout.flush()
        self.out.clear()

    def run(self, use_cwd: bool, inet_conf: str | None, operands: list[str]) -> int:
        allow, deny = table_paths(use_cwd)
        check_real_daemon_dir(self.diag)
        daemon, server = split_unbracketed(operands[0], "@") or (operands[0], UNKNOWN)
        if daemon.startswith("/"):
            given, daemon = daemon, daemon.rsplit("/", 1)[-1]
            self.warn(f"{given}: daemon name normalized to: {daemon}")
        user, client = split_unbracketed(operands[1], "@") or (UNKNOWN, operands[1])
        try:
            conf = read_inetd_conf(inet_conf or settings.INETD_CONF, self.diag, settings.REAL_DAEMON_DIR,
                                   explicit=inet_conf is not None)
        except OSError as e:
            raise Failure(f"open {inet_conf}: {os.strerror(e.errno or 0)}\n") from None
        conf.set("portmap", Wrap.NOT_WRAPPED)
        conf.set("rpcbind", Wrap.NOT_WRAPPED)
        status = conf.get(daemon)
        if status == Wrap.UNKNOWN:
            self.warn(f"{daemon}: no such process name in {conf.path or '(null)'}")
        elif status == Wrap.NOT_WRAPPED:
            self.warn(f"{daemon}: service possibly not wrapped")
        check_tables(self.diag, allow, deny)
        # the request keeps 127 bytes of each value (the inetd.conf check above saw the whole daemon name);
        # the server and client arguments are resolved whole, and cut where they become request values
        daemon, user = truncate(daemon), truncate(user)
        user = user or UNKNOWN  # an empty user field is "not known" to the reference
        server_endpoint = self.server_endpoint(server)
        first = True
        for client_endpoint in self.client_endpoints(client):
            if not first:
                self.print("")
            first = False
            server_copy = self.copy_server(server_endpoint)
            request = Request(daemon, client_endpoint, server_copy, os.getpid(), user=user)
            self.predict(request, allow, deny)
        return 0

    @staticmethod
    def copy_server(endpoint: Endpoint) -> Endpoint:
        """Each prediction gets its own server endpoint (expansions sanitise fields in place)."""
        copy = Endpoint(endpoint.address, endpoint.port, endpoint.sockaddr, endpoint._lookup)
        if endpoint.name_known:
            copy.name = endpoint.name
        return copy


def is_numeric_address(text: str) -> bool:
    """A dotted quad inet_addr accepts, or a numeric IPv6 address (a %scope is allowed)."""
    from pywrap.numeric import INADDR_NONE, dot_quad_addr

    if dot_quad_addr(text) != INADDR_NONE:
        return True
    try:
        infos = socket.getaddrinfo(text, None, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return False
    return bool(infos)


def run(argv: list[str], stdout: BinaryIO, stderr: BinaryIO) -> int:
    prog = argv[0] if argv else "tcpdmatch"
    try:
        parsed = parse_args(argv)
    except UsageError as e:
        if str(e):
            stderr.write(encode(f"{e}\n"))
        stderr.write(encode(USAGE.format(prog=prog)))
        return 2
    if parsed is None:
        stdout.write(encode(USAGE.format(prog=prog) + HELP))
        return 0
    use_cwd, inet_conf, operands = parsed
    tool = TcpdMatch(stdout, stderr, os.path.basename(prog))
    try:
        return tool.run(use_cwd, inet_conf, operands)
    except Failure as e:
        if str(e):
            stderr.write(encode(str(e)))
        return 1
    except ExpansionTooLong:
        return 1  # already reported where it happened; the reference exits without a verdict too
    finally:
        tool.flush()


def main() -> int:
    argv = [os.fsencode(a).decode("latin-1") for a in sys.argv]  # bytes as given, one char per byte
    return run(argv, sys.stdout.buffer, sys.stderr.buffer)


if __name__ == "__main__":
    sys.exit(main())
