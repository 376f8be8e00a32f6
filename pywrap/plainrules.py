"""Recognise plain rule lines without the grammar: `daemon: pattern [pattern ...]` and nothing else.

Contract: `parse_plain(text, file, line)` returns the Rule the grammar (pywrap.grammar) would return for a
complete logical line of that shape — one daemon pattern (no brackets, `@`, `:` or list separators), then
only letters, digits, `.`, `/`, `-`, `_` and list separators up to the newline, no EXCEPT — and None for
every other line, which the grammar then parses. Tables grown by fail2ban, DenyHosts or block lists
consist almost only of such lines, so they are read at the speed of one regular expression a line, with no
pyparsing import. tests/test_index.py checks that both parsers agree on every line this one accepts.
"""

from __future__ import annotations

import re
from _socket import inet_aton

from pywrap.index import AddressLine
from pywrap.rules import PatternList, Rule
from pywrap.text import split_list

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255 without leading zeros
ADDRESS_LINE = re.compile(
    rf"[ \t,\r]*([^ \t,\r\n:\[\]@]+)[ \t,\r]*:[ \t,\r]*({_OCTET}(?:\.{_OCTET}){{3}})[ \t,\r]*\n\Z")
PLAIN = re.compile(r"[ \t,\r]*([^ \t,\r\n:\[\]@]+)[ \t,\r]*:([0-9A-Za-z._/ \t,\r-]*)\n\Z")


def parse_plain(text: str, file: str, line: int) -> Rule | None:
    match = PLAIN.match(text)
    if match is None or match.group(1).upper() == "EXCEPT":
        return None
    clients = tuple(split_list(match.group(2)))
    if any(t.upper() == "EXCEPT" for t in clients):
        return None
    return Rule(file, line, PatternList((match.group(1),)), PatternList(clients), None)


def parse_address_line(text: str, file: str, line: int) -> AddressLine | None:
    """The commonest plain line, `daemon: a.b.c.d` with a canonical address, as an AddressLine (what
    parse_plain would give, without building the Rule); None for anything else."""
    match = ADDRESS_LINE.match(text)
    if match is None:
        return None
    daemon, token = match.groups()
    if daemon.upper() == "EXCEPT":
        return None
    # tuple.__new__ skips the record's argument handling: this runs once per line of a huge table
    return tuple.__new__(AddressLine, (file, line, daemon, token, int.from_bytes(inet_aton(token), "big")))
