"""The access decision: hosts.allow, then hosts.deny, first match wins, grant when nothing matches.

Contract: `decide(request, diag, effects, allow_path, deny_path)` -> `Verdict`. It follows
../shared/spec/rule-language.md §10 to the letter: a missing table is empty; an unreadable or malformed
table is an ERROR (hosts.allow then grants nothing, hosts.deny denies everybody it is asked about); the
options of the matched rule run here (allow/deny/twist or an option error end everything); a failed aclexec
demotes the match, and — the reference's stale flag — every later matched rule that has options too.
Anything that goes wrong inside (a /file loop, an internal error) denies: fail closed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum

from pywrap.diag import Diagnostics
from pywrap.options import Effects, run_options
from pywrap.patterns import Matcher, RuleError
from pywrap.request import Request
from pywrap.rules import Entry, LineProblem, Rule
from pywrap.tables import read_table, significant_lines


class Scan(Enum):
    NO_MATCH = "no match"
    MATCH = "match"
    ERROR = "error"


@dataclass(frozen=True)
class Verdict:
    granted: bool
    delegated: bool = False          # a `twist` option took over
    rule: Rule | None = None         # the rule that decided, if any
    failed: bool = False             # denied because a rule could not be evaluated at all (fail closed)


@dataclass
class _Scanning:
    matcher: Matcher
    diag: Diagnostics
    effects: Effects
    aclexec_failed: bool = False     # never reset, as in the reference
    final: str | None = None
    rule: Rule | None = None
    stale_context: tuple[str, int] | None = None


@functools.lru_cache(maxsize=16)
def parsed_table(data: bytes, path: str) -> tuple[Entry, ...]:
    lines = significant_lines(data)
    if not lines:  # comments and blank lines only: no need to load the grammar (pyparsing) at all
        return ()
    from pywrap.grammar import parse_lines

    return parse_lines(lines, path)


def _scan(path: str, state: _Scanning) -> Scan:
    table = read_table(path)
    if table.missing:
        return Scan.NO_MATCH
    if table.data is None:
        state.diag.warning(f"cannot open {path}: {table.error}")
        return Scan.ERROR
    if table.is_directory:
        # silent in the reference; same verdict (an empty table), but the admin should know
        state.diag.warning(f"{path}: is a directory, read as an empty table")
    matched: Rule | None = None
    for entry in parsed_table(table.data, path):
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
