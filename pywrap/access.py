"""The access decision: hosts.allow, then hosts.deny, first match wins, grant when nothing matches.

Contract: `decide(request, diag, effects, allow_path, deny_path)` -> `Verdict`. It follows
../shared/spec/rule-language.md §10 to the letter: a missing table is empty; an unreadable or malformed
table is an ERROR (hosts.allow then grants nothing, hosts.deny denies everybody it is asked about); the
options of the matched rule run here (allow/deny/twist or an option error end everything); a failed aclexec
demotes the match, and — the reference's stale flag — every later matched rule that has options too.
Anything that goes wrong inside (a /file loop, an internal error) denies: fail closed.
"""

from __future__ import annotations

from pywrap import settings
from pywrap.diag import Diagnostics
from pywrap.index import DamagedData, Run
from pywrap.lean import record, small_cache
from pywrap.patterns import Matcher, RuleError
from pywrap.request import Request
from pywrap.rules import Entry, LineProblem, Rule
from pywrap.tables import Refused, open_regular, read_bounded, significant_lines

TYPE_CHECKING = False  # no typing import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from pywrap.options import Effects


class Scan:
    """What scanning one table gave."""

    NO_MATCH = "no match"
    MATCH = "match"
    ERROR = "error"


class Verdict(record("Verdict", "granted delegated rule failed", defaults=(False, None, False))):
    granted: bool
    delegated: bool                  # a `twist` option took over
    rule: Rule | None                # the rule that decided, if any
    failed: bool                     # denied because a rule could not be evaluated at all (fail closed)
    __slots__ = ()


class _Scanning:
    def __init__(self, matcher: Matcher, diag: Diagnostics, effects: Effects) -> None:
        self.matcher = matcher
        self.diag = diag
        self.effects = effects
        self.aclexec_failed = False  # never reset, as in the reference
        self.final: str | None = None
        self.rule: Rule | None = None
        self.stale_context: tuple[str, int] | None = None


def load_table(path: str, diag: Diagnostics, use_cache: bool = True) -> tuple[str, tuple[Entry, ...]]:
    """("missing" | "error: <strerror>" | "ok", entries) for a table, through the parsed-table cache
    (`use_cache=False`: parse the file, and replace what the cache holds for it)."""
    import os

    try:
        fd, size = open_regular(path)  # never blocks (a FIFO), never more than TABLE_MAX_BYTES
    except FileNotFoundError:
        return "missing", ()
    except IsADirectoryError:
        # the reference opens a directory and reads no line from it: an empty table
        diag.warning(f"{path}: is a directory, read as an empty table")
        return "ok", ()
    except Refused as e:  # not a regular file, or too big: an error table, as if it could not be opened
        return f"error: {e}", ()
    except OSError as e:
        return f"error: {os.strerror(e.errno or 0)}", ()
    turn = None
    try:
        from pywrap import tablecache

        entries = tablecache.cached_entries(path, fd, diag.warning) if use_cache else None
        if entries is None and use_cache and size >= settings.PARSE_LOCK_MIN_SIZE:
            entries, turn = tablecache.parse_turn(path, fd, diag.warning)  # or wait for another's parse
        if entries is None:
            # the bytes and the file state they are the content of: the cache is keyed on what was read
            snapshot = tablecache.read_file(fd, read_bounded)
            entries = parsed_table(snapshot.data, path)
            if entries:
                tablecache.store_entries(path, fd, entries, snapshot, diag.warning)
        return "ok", entries
    except Refused as e:  # it grew past the bound since it was opened
        return f"error: {e}", ()
    except OSError as e:
        return f"error: {os.strerror(e.errno or 0)}", ()
    finally:
        if turn is not None:
            tablecache.end_turn(turn)
        os.close(fd)


@small_cache(4)  # keyed on whole tables: keep few (a long-lived library process)
def parsed_table(data: bytes, path: str) -> tuple:
    """The table's items: entries, with long runs of plain address rules compiled into indexed Runs.
    Plain lines are read without the grammar; pyparsing is loaded only for the other lines, if any."""
    import gc

    # A huge table allocates millions of small tuples, none of them cyclic garbage: without this the
    # cycle collector runs over all of them again and again (40% of the parse of a million lines).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse_table(data, path)
    finally:
        if was_enabled:
            gc.enable()


def _parse_table(data: bytes, path: str) -> tuple:
    lines = significant_lines(data)
    if not lines:  # comments and blank lines only: nothing to parse, nothing to import
        return ()
    from pywrap.index import compile_table
    from pywrap.plainrules import parse_address_line, parse_plain

    entries: list = [(parse_address_line(x.text, path, x.line) or parse_plain(x.text, path, x.line))
                     if x.complete else None for x in lines]
    rest = [x for x, entry in zip(lines, entries, strict=True) if entry is None]
    if rest:
        from pywrap.grammar import parse_lines

        parsed = iter(parse_lines(rest, path))
        entries = [entry if entry is not None else next(parsed) for entry in entries]
    return compile_table(tuple(entries))


def _scan(path: str, state: _Scanning, use_cache: bool = True) -> str:
    status, entries = load_table(path, state.diag, use_cache)
    if status == "missing":
        return Scan.NO_MATCH
    if status != "ok":
        state.diag.warning(f"cannot open {path}: {status[len('error: '):]}")
        return Scan.ERROR
    matched: Rule | None = None
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if isinstance(entry, Run):  # plain rules: index lookups instead of a scan
            try:
                position = _run_match(entry, state)
                matched = None if position is None else entry.rule(position)
            except DamagedData:  # a cached array failed its check: parse the table again, carry on
                state.diag.warning(f"{path}: damaged table cache, parsing {path} instead")
                status, fresh = load_table(path, state.diag, use_cache=False)
                if status != "ok" or len(fresh) != len(entries):
                    # the file changed meanwhile: this table again from its start, parsed (no cache, so
                    # no second DamagedData). Had it changed keeping its length, carrying on below reads
                    # the new version from here on, as the reference's own line-by-line read would.
                    return _scan(path, state, use_cache=False)
                entries, i = fresh, i - 1
                continue
            if matched is not None:
                break
            continue
        with state.diag.in_context(entry.file, entry.line):
            if isinstance(entry, LineProblem):
                for message in entry.messages:
                    state.diag.warning(message)
                if entry.fatal:
                    return Scan.ERROR
                continue
            try:
                if state.matcher.daemon_list(entry.daemons) and state.matcher.client_list(entry.clients):
                    matched = entry
                    break
            except RuleError as e:
                state.diag.error(str(e))  # inside the context: the message names the table and line
                raise
    if matched is None:
        return Scan.NO_MATCH
    state.rule = matched
    state.diag.matched(matched.file, matched.line)
    if matched.options is not None:
        from pywrap.options import run_options  # most rules have none: not imported for them

        with state.diag.in_context(matched.file, matched.line):
            result = run_options(matched.options, state.matcher.request, state.diag, state.effects)
            state.aclexec_failed |= result.aclexec_failed
            if result.final is not None:
                state.final = result.final
                if result.final != "twist":
                    state.stale_context = (matched.file, matched.line)
                return Scan.MATCH
            if state.aclexec_failed:
                state.diag.info("aclexec returned 1")
                return Scan.NO_MATCH
    return Scan.MATCH


def _run_match(run: Run, state: _Scanning) -> int | None:
    def evaluate(rule: Rule) -> bool:
        with state.diag.in_context(rule.file, rule.line):
            return state.matcher.client_list(rule.clients)

    if not state.matcher.daemon_token(run.daemon):
        return None
    return run.first_match(state.matcher.request.client, evaluate)


def decide(request: Request, diag: Diagnostics, effects: Effects, allow_path: str, deny_path: str,
           matcher: Matcher | None = None) -> Verdict:
    state = _Scanning(matcher or Matcher(request, diag), diag, effects)
    try:
        return _decide(state, allow_path, deny_path)
    finally:
        if state.stale_context is not None:
            # The reference leaves `allow`, `deny` and option errors with a longjmp that skips restoring
            # its diagnostic context, so later warnings of the same process still name that table and
            # line. Keep that: it is what tcpdmatch and tcpd print.
            diag.context = state.stale_context


def _decide(state: _Scanning, allow_path: str, deny_path: str) -> Verdict:
    try:
        if _scan(allow_path, state) is Scan.MATCH:
            return _final(state, default_granted=True)
        state.final = None
        state.rule = None
        outcome = _scan(deny_path, state)
        if outcome is Scan.NO_MATCH:
            return Verdict(True)
        if outcome is Scan.ERROR:
            return Verdict(False)  # an unreadable or malformed hosts.deny denies: the rules' own verdict
        return _final(state, default_granted=False)
    except RuleError:
        return Verdict(False, rule=state.rule, failed=True)


def _final(state: _Scanning, default_granted: bool) -> Verdict:
    if state.final == "allow":
        return Verdict(True, rule=state.rule)
    if state.final == "deny":
        return Verdict(False, rule=state.rule)
    if state.final == "twist":
        return Verdict(False, delegated=True, rule=state.rule)
    return Verdict(default_granted, rule=state.rule)
