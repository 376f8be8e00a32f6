"""The rule grammar (pyparsing): one logical line of a table -> a `Rule`.

This is the only module that imports pyparsing. Contract: `parse_table(data, file)` turns the bytes of a
table into a tuple of `pywrap.rules` entries (comments and blank lines dropped), never raising for any input.

The reference's quirks are part of the grammar:
- fields are split at the first `:` outside square brackets, where "outside" is a plain depth counter that
  may go negative (`]` before `[`), and an unclosed `[` hides every later colon;
- the option part is everything after the second such colon (newline included); inside it `\\:` is a literal
  colon and any other backslash stays;
- lists are split on runs of `,`, space, tab, CR and LF; only those bytes separate (a form feed does not);
- EXCEPT (any case, as a whole token) nests to the right.
"""

from __future__ import annotations

import pyparsing as pp

from pywrap.rules import (
    MISSING_NEWLINE,
    MISSING_SEPARATOR,
    Entry,
    LineProblem,
    OptionField,
    PatternList,
    Rule,
)
from pywrap.tables import LogicalLine, significant_lines
from pywrap.text import LIST_SEPARATORS, TCPDCHK_SEPARATORS, find_unbracketed, same

C_SPACE = " \t\n\v\f\r"


class _Field(pp.Token):
    """Text up to (not including) the first `:` at bracket depth 0; fails when there is none."""

    def __init__(self) -> None:
        super().__init__()
        self.leave_whitespace()
        self.mayReturnEmpty = True
        self.errmsg = MISSING_SEPARATOR

    def parseImpl(self, instring: str, loc: int, doActions: bool = True):  # noqa: N802 (pyparsing API)
        end = find_unbracketed(instring, ":", loc)
        if end < 0:
            raise pp.ParseException(instring, loc, self.errmsg, self)
        return end, instring[loc:end]


def _build_line_grammar() -> pp.ParserElement:
    colon = pp.Literal(":").leave_whitespace().suppress()
    rest = pp.Regex(r"[\s\S]*").leave_whitespace()
    daemons = _Field()("daemons")
    with_options = _Field()("clients") + colon + rest("options")
    without_options = rest("clients")
    return daemons + colon + (with_options | without_options)


def _build_list_grammar(separator_chars: str = LIST_SEPARATORS) -> pp.ParserElement:
    separators = pp.Regex(f"[{separator_chars}]+").leave_whitespace().suppress()
    token = pp.Regex(f"[^{separator_chars}]+").leave_whitespace()
    return pp.Optional(separators) + pp.ZeroOrMore(token + pp.Optional(separators)) + pp.StringEnd()


def _build_option_grammar() -> pp.ParserElement:
    # a field is a run of escaped colons and non-colon bytes; `\:` becomes ":" (the backslash goes)
    escaped_colon = pp.Literal("\\:").leave_whitespace().set_parse_action(pp.replace_with(":"))
    plain = pp.Regex(r"(?:[^:\\]|\\(?!:))+").leave_whitespace()
    field = pp.Combine(pp.ZeroOrMore(escaped_colon | plain), adjacent=False).leave_whitespace()
    field.set_parse_action(lambda t: "".join(t) if t else "")
    fields = pp.Group(pp.Optional(field, default="")) + pp.ZeroOrMore(
        pp.Literal(":").leave_whitespace().suppress() + pp.Group(pp.Optional(field, default=""))
    )
    return fields + pp.StringEnd()


# parse_with_tabs: pyparsing would otherwise expand every tab to spaces before parsing, and a tab in an
# option (`setenv X a<TAB>b`, a quoted tab in a shell command) must reach it as the tab it is.
_LINE = _build_line_grammar().parse_with_tabs()
_LIST = _build_list_grammar().parse_with_tabs()
_CHECK_LIST = _build_list_grammar(TCPDCHK_SEPARATORS).parse_with_tabs()  # a CR stays in the token
_OPTIONS = _build_option_grammar().parse_with_tabs()


def list_tokens(text: str, for_tcpdchk: bool = False) -> list[str]:
    """The tokens of a daemon or client list, as tcpd (or, with for_tcpdchk, as tcpdchk) splits them."""
    return list((_CHECK_LIST if for_tcpdchk else _LIST).parse_string(text, parse_all=True))


def split_fields(text: str) -> tuple[str, str, str | None] | None:
    """(daemon list, client list, option text or None) of a rule line; None: no ":" separator."""
    try:
        parsed = _LINE.parse_string(text, parse_all=True)
    except pp.ParseException:
        return None
    return parsed["daemons"], parsed["clients"], parsed.get("options")


def parse_list(text: str) -> PatternList:
    tokens = list_tokens(text)
    groups: list[list[str]] = [[]]
    for token in tokens:
        if same(token, "EXCEPT"):
            groups.append([])
        else:
            groups[-1].append(token)
    result: PatternList | None = None
    for group in reversed(groups):
        result = PatternList(tuple(group), result)
    assert result is not None
    return result


def split_option_fields(text: str) -> list[str]:
    return ["".join(group) for group in _OPTIONS.parse_string(text, parse_all=True)]


def parse_option_field(field: str) -> OptionField:
    """Keyword and value as the reference splits them: `kw value`, `kw=value` and `kw = value` are alike;
    only one `=` is eaten (`severity = = info` has the value `= info`)."""
    field = field.strip(C_SPACE)
    i = 0
    while i < len(field) and field[i] not in "= \t\r\n":
        i += 1
    keyword = field[:i]
    if i < len(field) and field[i] != "=":
        i += 1
        while i < len(field) and field[i] in " \t\r\n":
            i += 1
    if i < len(field) and field[i] == "=":
        i += 1
        while i < len(field) and field[i] in " \t\r\n":
            i += 1
    return OptionField(keyword, field[i:])


def parse_options(text: str) -> tuple[OptionField, ...]:
    return tuple(parse_option_field(f) for f in split_option_fields(text))


def parse_rule(text: str, file: str, line: int) -> Entry:
    fields = split_fields(text)
    if fields is None:
        return LineProblem(file, line, (MISSING_SEPARATOR,), fatal=False)
    daemons, clients, options = fields
    return Rule(
        file=file,
        line=line,
        daemons=parse_list(daemons),
        clients=parse_list(clients),
        options=None if options is None else parse_options(options),
    )


def parse_lines(lines: list[LogicalLine], file: str) -> tuple[Entry, ...]:
    """Significant logical lines (tables.significant_lines) -> entries."""
    entries: list[Entry] = []
    for logical in lines:
        if not logical.complete:
            entries.append(LineProblem(file, logical.line, MISSING_NEWLINE, fatal=True))
        else:
            entries.append(parse_rule(logical.text, file, logical.line))
    return tuple(entries)


def parse_table(data: bytes, file: str) -> tuple[Entry, ...]:
    return parse_lines(significant_lines(data), file)
