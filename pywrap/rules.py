"""The parsed form of a table: plain, immutable data (no parser objects), cacheable and reusable.

A table is a tuple of entries, one per logical line that is not a comment or blank: a `Rule`, or a
`LineProblem` that the scan reports when it reaches that line (missing ":" separator, missing newline or
line too long). Patterns stay the strings the admin wrote; `pywrap.patterns` gives them meaning.
"""

from __future__ import annotations

from pywrap.lean import record


class PatternList(record("PatternList", "patterns exceptions", defaults=(None,))):
    """`patterns EXCEPT exceptions`: matches when some pattern matches and the exceptions do not.

    EXCEPT nests to the right, as in the reference: `a EXCEPT b EXCEPT c` is `a EXCEPT (b EXCEPT c)`. An empty
    `patterns` never matches (a list that starts with EXCEPT); an empty exception list excludes nothing.
    """

    patterns: tuple[str, ...]
    exceptions: PatternList | None

    __slots__ = ()

    def tokens(self) -> tuple[str, ...]:
        """The list as written, EXCEPT keywords included."""
        out: list[str] = []
        level: PatternList | None = self
        while level is not None:
            out.extend(level.patterns)
            if level.exceptions is not None:
                out.append("EXCEPT")
            level = level.exceptions
        return tuple(out)


class OptionField(record("OptionField", "keyword value")):
    """One `:`-separated field of a rule's option part, split into keyword and value as the reference does.

    `value` is "" when the option has none. Whether the keyword exists and the value is valid is decided
    only when the rule matches (pywrap.options), because that is when the reference complains.
    """

    keyword: str
    value: str
    __slots__ = ()


class Rule(record("Rule", "file line daemons clients options")):
    """One rule: where it is, its two lists, and its option fields."""

    file: str
    line: int
    daemons: PatternList
    clients: PatternList
    options: tuple[OptionField, ...] | None  # None: the rule has no third field at all
    __slots__ = ()


class LineProblem(record("LineProblem", "file line messages fatal")):
    """A logical line the scan warns about. `fatal`: the rest of the table is ignored (an ERROR table)."""

    file: str
    line: int
    messages: tuple[str, ...]
    fatal: bool
    __slots__ = ()


Entry = Rule | LineProblem

MISSING_SEPARATOR = 'missing ":" separator'
MISSING_NEWLINE = ("missing newline or line too long", "all the subsequent rules will be ignored")
