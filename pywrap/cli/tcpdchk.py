"""tcpdchk: check the access-control tables (and inetd.conf) for mistakes.

Usage: tcpdchk [-a] [-d] [-i inet_conf] [-v] [--no-dns] [--json]

Contract: every check Debian's tcpdchk makes, worded as it words them, and the same stdout with -v
(`>>> Rule hosts.allow line N:` blocks). Unlike Debian's, whose warnings go to syslog only, findings go to
stderr as `FILE, line N: warning: ...` (or `error:`), and the exit status is 1 when an error was found (0
otherwise, 2 for usage), so config management and CI can gate on it. Whatever tcpd would skip (a line
without ":", the rest of a table after a line without newline or over 2046 characters, a table it cannot
open) is an error, on a line of its own after Debian's warning. Checks the reference lacks (see --help) are
additional lines; options are checked but never change this process. A DNS failure is said once, and DNS
is not asked again in that run. An option's %-expansion over tcpd's buffer ends the check there, as percent_x
ends Debian's (its warning, then an error). --json writes one object as the check goes, with every rule and
the first FINDINGS_LISTED findings of each level (and the counts of all), so its memory stays bounded.
"""

from __future__ import annotations

import os
import sys

from pywrap import settings
from pywrap.cli.common import UsageError, check_real_daemon_dir, check_tables, getopt, table_paths
from pywrap.diag import Diagnostics, StreamDiagnostics
from pywrap.inetconf import InetConf, Wrap, read_inetd_conf
from pywrap.numeric import inet_pton6
from pywrap.text import TCPDCHK_SEPARATORS, encode, plain_fields, same, split_list, split_unbracketed

TYPE_CHECKING = False  # typing costs start-up time; only checkers need it
if TYPE_CHECKING:
    from typing import BinaryIO

USAGE = """usage: {prog} [-a] [-d] [-i inet_conf] [-v]
\t-a: report rules with implicit "ALLOW" at end
\t-d: use allow/deny files in current directory
\t-i: location of inetd.conf file
\t-v: list all rules
"""

HELP = USAGE + """
pywrap's tcpdchk also takes:
\t--no-dns: do not resolve host names and addresses in the rules (no DNS at all)
\t--json:   print the rules and the findings as JSON on stdout, nothing on stderr (the first 10000
\t          findings of each level are listed, and all are counted)

Findings go to stderr as "FILE, line N: warning: ..." (or error: / note:); the exit status is 1 when an
error was found: a line tcpd skips (no ":") or a table it stops reading or cannot open is one. Besides
Debian's checks, it reports, each from a real failure seen in the field:
\t- IPv6 addresses without [brackets] (fail2ban, DenyHosts and Wazuh wrote "ALL: 2001:db8::1", which tcpd
\t  reads as client "2001" plus options, so the address is never blocked)
\t- a line without a final newline or longer than 2046 characters: tcpd ignores the rest of the file,
\t  and in hosts.deny that denies everybody
\t- rules that can never match because an earlier rule always matches first, and exact duplicates
\t  (rule sets grown by hand or by scripts)
\t- name patterns that make tcpd look up the client's host name for every connection that reaches them
\t- name checks are bounded in time (a busy resolver made Debian's tcpdchk take minutes), and the first
\t  DNS failure (timeout, unreachable, SERVFAIL) ends them with one warning instead of two per address
"""

# Debian's list of programs that link libwrap themselves (so need not appear in inetd.conf)
DEBIAN_WRAPPED = ("portmap mountd statd ugidd redir rlinetd sshd atftpd diald esound gdm gnome-session "
                  "icecast icecast_admin icecast_client icecast_source mysqld ntop pptpd rquotad sendmail "
                  "smail").split()


FINDINGS_LISTED = 10_000  # --json lists the first 10,000 findings of each level; all are counted
EXPANSION_ERROR = ("%-expansion over tcpd's buffer with tcpdchk's placeholder values: tcpd refuses, "
                   "without a verdict, every connection whose expansion overflows; "
                   "rules after this one were not checked")


class CheckEnded(Exception):
    """An over-long %-expansion: percent_x ends Debian's tcpdchk there, and this one checks no further."""


class JsonFindings(Diagnostics):
    """--json's findings: every one counted by level, the first FINDINGS_LISTED of each level kept, already
    encoded, so that memory stays bounded however many lines a table has (a table may hold 64 MiB)."""

    def __init__(self) -> None:
        super().__init__()
        import json  # only for --json: it costs ~7 ms of start-up

        self.dumps = json.dumps
        self.listed: list[str] = []
        self.counts = {"error": 0, "warning": 0, "note": 0}

    def emit(self, kind: str, text: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] <= FINDINGS_LISTED:
            self.listed.append(self.dumps(finding(self.context, kind, text)))


def finding(context: tuple[str, int] | None, kind: str, text: str) -> dict:
    return {"file": context[0] if context else None, "line": context[1] if context else None, "level": kind,
            "message": text}


class JsonDocument:
    """--json's one object, written as the check goes: the rules one a line as they are checked (none is
    kept), then the findings JsonFindings kept, a note on those it did not, and the counts of all."""

    def __init__(self, stdout: BinaryIO, findings: JsonFindings) -> None:
        self.stdout = stdout
        self.findings = findings
        self.separator = "\n"

    def start(self, inetd_conf: str | None) -> None:
        self.stdout.write(encode(f'{{"inetd_conf": {self.findings.dumps(inetd_conf)}, "rules": ['))

    def rule(self, rule: dict) -> None:
        self.stdout.write(encode(self.separator + self.findings.dumps(rule)))
        self.separator = ",\n"

    def finish(self) -> None:
        findings, dumps = self.findings, self.findings.dumps
        listed = findings.listed
        more = sum(findings.counts.values()) - len(listed)
        if more:
            note = f"{more} more findings not listed: only the first {FINDINGS_LISTED} of each level are"
            listed.append(dumps(finding(None, "note", note + " (counts has them all)")))
        entries = "".join(("\n" if i == 0 else ",\n") + entry for i, entry in enumerate(listed))
        self.stdout.write(encode(f'\n], "findings": [{entries}\n], "counts": {dumps(findings.counts)}}}\n'))


def fake_request():
    """The request tcpdchk runs options with (the reference's placeholder values)."""
    from pywrap.request import Endpoint, Request

    client = Endpoint("client_addr", name="client_hostname")
    server = Endpoint("server_addr", name="server_hostname")
    return Request("daemon_name", client, server, os.getpid(), user="user_name")


class TcpdChk:
    def __init__(self, stdout: BinaryIO, diag: Diagnostics, options: dict, prog: str,
                 document: JsonDocument | None = None) -> None:
        self.stdout = stdout
        self.diag = diag
        self.options = options
        self.prog = prog
        self.document = document  # --json: rules go there as they are checked, and nothing else to stdout
        self.listing = bool(options.get("v")) and document is None  # -v's listing, printed at the end
        self.out: list[str] = []
        self.seen: dict[tuple, tuple[str, int]] = {}        # rule text -> first place (duplicates)
        self.catch_all: list[tuple[str, int, tuple[str, ...]]] = []  # earlier rules that always match
        self.tcpd_stopped = False  # tcpd reads no further in the current table (an incomplete line came)

    def run(self) -> int:
        from pywrap.rulecheck import RuleChecker

        allow, deny = table_paths(bool(self.options.get("d")))
        check_real_daemon_dir(self.diag)
        inet_conf = self.options.get("i")
        conf = read_inetd_conf(inet_conf if isinstance(inet_conf, str) else settings.INETD_CONF, self.diag,
                               settings.REAL_DAEMON_DIR, explicit=isinstance(inet_conf, str))
        if self.listing:
            self.out.append(f"Using network configuration file: {conf.path or '(null)'}\n")
        for name in DEBIAN_WRAPPED:
            conf.set(name, Wrap.WRAPPED)
        check_tables(self.diag, allow, deny)
        self.checker = RuleChecker(self.diag, conf, check_names=not self.options.get("no-dns"))
        self.inetconf: InetConf = conf
        if self.document is not None:
            self.document.start(conf.path)
        try:
            self.table(allow, granted=True)
            self.table(deny, granted=False)
        except CheckEnded:
            pass  # said, with the reference's warning, where it happened
        self.checker.summary()
        return 0

    def table(self, path: str, granted: bool) -> None:
        from pywrap.tables import is_skipped, logical_lines, read_table

        table = read_table(path)
        if table.missing:
            return
        if table.data is None:
            self.unreadable(path, table.error or "", granted)
            return
        self.tcpd_stopped = False
        for logical in logical_lines(table.data):
            with self.diag.in_context(path, logical.line):
                if not logical.complete:
                    self.incomplete(path, logical.line, granted)
                elif not is_skipped(logical.text):
                    self.rule(path, logical.line, logical.text, granted)

    # what tcpd skips: Debian's warning, then an error (issue 12, item 8: a lost rule must fail the check)
    def unreadable(self, path: str, error: str, granted: bool) -> None:
        self.diag.warning(f"cannot open {path}: {error}")
        if granted:
            self.diag.error(f"tcpd ignores {path} when it cannot open it: no rule in it grants anything")
        else:
            self.diag.error("tcpd denies every client that hosts.allow does not grant when it cannot open "
                            f"{path}")

    def incomplete(self, path: str, line: int, granted: bool) -> None:
        """A line without newline or over 2046 characters: tcpd reads the table no further (tcpdchk goes on,
        as Debian's does, but the lost lines are said to be lost only here, once). Debian's warning names
        `line`, the newlines read before it (the line before, `line 0` in a one-line file); our error
        names the line tcpd was reading when its buffer filled or the file ended."""
        self.diag.warning("missing newline or line too long")
        if not self.tcpd_stopped:
            with self.diag.in_context(path, line + 1):
                self.diag.error(f"tcpd stops reading {path} here: " + (
                    "no rule from here on grants anything" if granted else
                    "every client that hosts.allow does not grant is denied"))
        self.tcpd_stopped = True

    def no_separator(self, granted: bool) -> None:
        self.diag.warning('missing ":" separator')
        if not self.tcpd_stopped:  # past an incomplete line tcpd reads nothing, and that error was given
            self.diag.error(f'no ":" separator: tcpd skips this line, so this rule never '
                            f"{'grants' if granted else 'denies'} anything")

    def rule(self, path: str, line: int, text: str, default_granted: bool) -> None:
        fields = plain_fields(text)
        if fields is None:  # brackets or options: the grammar (and pyparsing) only when a table has them
            from pywrap.grammar import split_fields

            fields = split_fields(text)
        if fields is None:
            self.no_separator(default_granted)
            return
        daemons, clients, option_text = fields
        self.checker.daemon_list(daemons)
        self.checker.client_list(clients)
        daemon_tokens = split_list(daemons, TCPDCHK_SEPARATORS)
        client_tokens = split_list(clients, TCPDCHK_SEPARATORS)
        self.extra_checks(path, line, daemon_tokens, client_tokens, clients, option_text)
        if self.listing:  # before the options: an over-long expansion ends Debian's listing after these lines
            self.out.append(f"\n>>> Rule {path} line {line}:\ndaemons:  {' '.join(daemon_tokens)}\n"
                            f"clients:  {' '.join(client_tokens)}\n")
        word = "granted" if self.access(option_text, default_granted) else "denied"
        if self.document is not None:
            self.document.rule({"file": path, "line": line, "daemons": daemon_tokens,
                                "clients": client_tokens, "access": word})
        if self.listing:
            self.out.append(f"access:   {word}\n")

    def access(self, option_text: str | None, default_granted: bool) -> bool:
        """The rule's verdict, its options checked as tcpd checks them (never carried out). CheckEnded after
        an over-long %-expansion."""
        if option_text is None:
            if default_granted and self.options.get("a"):
                self.diag.warning('implicit "allow" at end of rule')
            return default_granted
        from pywrap.expand import ExpansionTooLong
        from pywrap.grammar import parse_options
        from pywrap.options import DryRun, run_options

        effects = DryRun(write_banner=self.write_banner, warn=self.diag.warning)
        try:
            result = run_options(parse_options(option_text), fake_request(), self.diag, effects)
        except ExpansionTooLong:  # run_options gave the reference's warning
            self.diag.error(EXPANSION_ERROR)
            raise CheckEnded from None
        if default_granted and result.final is None and self.options.get("a"):
            self.diag.warning('implicit "allow" at end of rule')
        if result.final in ("allow", "deny"):  # an error counts as deny; twist keeps the table's default
            return result.final == "allow"
        return default_granted

    # checks the reference lacks -----------------------------------------------------------------
    def extra_checks(self, path: str, line: int, daemons: list[str], clients: list[str], client_text: str,
                     option_text: str | None) -> None:
        self.unbracketed_ipv6(clients, option_text)
        key = (tuple(daemons), tuple(t.strip() for t in clients), (option_text or "").strip())
        if key in self.seen:
            where = self.seen[key]
            self.diag.warning(f"duplicate of {where[0]}, line {where[1]}: this rule is never used")
        else:
            self.seen[key] = (path, line)
            for file, number, catch_daemons in self.catch_all:
                if catch_daemons == ("ALL",) or tuple(daemons) == catch_daemons:
                    self.diag.warning(f"never used: {file}, line {number} matches every client of "
                                      f"{' '.join(catch_daemons)} first")
                    break
        if self.always_matches(daemons, clients, option_text):
            self.catch_all.append((path, line, tuple(daemons)))
        needs_name = [t for t in clients if _needs_name(t)]
        if needs_name:
            self.diag.note(f"{', '.join(needs_name[:3])}{' ...' if len(needs_name) > 3 else ''}: "
                           "tcpd looks up the client's host name (DNS) for every connection this rule sees")

    @staticmethod
    def always_matches(daemons: list[str], clients: list[str], option_text: str | None) -> bool:
        """ALL (or one plain daemon name) for ALL clients, no EXCEPT, no aclexec that could fall through."""
        if any(same(t, "EXCEPT") for t in daemons + clients) or not any(same(t, "ALL") for t in clients):
            return False
        if option_text is not None and "aclexec" in option_text.lower():
            return False
        return len(daemons) == 1 and "@" not in daemons[0] and not daemons[0].isdigit()

    def unbracketed_ipv6(self, clients: list[str], option_text: str | None) -> None:
        if not clients or option_text is None:
            return
        rest = option_text.split(None, 1)[0] if option_text.split() else ""
        candidate = f"{clients[-1]}:{rest}"  # "ALL: 2001:db8::1" splits into client "2001", option "db8::1"
        # a %scope (sshd writes a link-local peer as fe80::1%eth0) is split off the same way, valid or not
        if inet_pton6(candidate.partition("%")[0]) is not None:
            self.diag.error(f"{candidate}: IPv6 address without [brackets]: tcpd reads the client "
                            f'"{clients[-1]}" and takes the rest as options, so this address never matches; '
                            f"write [{candidate}]")

    def write_banner(self, data: bytes) -> None:
        if self.document is None:  # with --json, stdout holds the document alone (the banner was checked)
            self.stdout.write(data)
            self.stdout.flush()

    def flush(self) -> None:
        self.stdout.write(encode("".join(self.out)))
        self.stdout.flush()
        self.out.clear()


def _needs_name(token: str) -> bool:
    parts = split_unbracketed(token, "@", 1)  # user@host: the host part, found as tcpd finds it
    host = parts[1] if parts else token
    if host.startswith(("/", "[")) or any(same(host, w) for w in ("ALL", "EXCEPT", "UNKNOWN", "FAIL")):
        return False
    if host.startswith("@") or any(same(host, w) for w in ("KNOWN", "LOCAL", "PARANOID")):
        return True
    if "/" in host:
        return False
    return not set(host) <= frozenset("0123456789./")


def run(argv: list[str], stdout: BinaryIO, stderr: BinaryIO) -> int:
    prog = argv[0] if argv else "tcpdchk"
    try:
        options, operands = getopt(argv, "adv", "i", ("no-dns", "json", "help"))
        if operands:
            raise UsageError("")
    except UsageError as e:
        if str(e):
            stderr.write(encode(f"{e}\n"))
        stderr.write(encode(USAGE.format(prog=prog)))
        return 2
    if options.get("help"):
        stdout.write(encode(HELP.format(prog=prog)))
        return 0
    # like Debian's, the `option:` trace lines only with -v
    diag = (JsonFindings() if options.get("json")
            else StreamDiagnostics(stderr, os.path.basename(prog), trace=bool(options.get("v"))))
    document = JsonDocument(stdout, diag) if isinstance(diag, JsonFindings) else None
    tool = TcpdChk(stdout, diag, options, os.path.basename(prog), document)
    try:
        tool.run()
    except OSError as e:  # the -i file cannot be read (before any output)
        stderr.write(encode(f"open {options.get('i')}: {os.strerror(e.errno or 0)}\n"))
        return 1
    finally:
        tool.flush()
    if document is not None:
        document.finish()
    return 1 if diag.counts.get("error", 0) else 0


def main() -> int:
    argv = [os.fsencode(a).decode("latin-1") for a in sys.argv]
    return run(argv, sys.stdout.buffer, sys.stderr.buffer)


if __name__ == "__main__":
    sys.exit(main())
