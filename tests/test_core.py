"""Unit and property tests of the pure core: C-compatible number parsing (checked against libc itself through
ctypes), the logical-line reader, the grammar, wildcard and pattern matching, EXCEPT evaluation, expansion.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pywrap.diag import CollectingDiagnostics
from pywrap.expand import SAFE, ExpansionTooLong, expand, sanitise
from pywrap.grammar import parse_option_field, parse_table
from pywrap.numeric import (
    INADDR_NONE,
    atoi,
    dot_quad_addr,
    inet_aton,
    inet_pton6_scoped,
    scan_int,
    scan_octal,
    scan_unsigned,
    strtoul_prefix,
)
from pywrap.patterns import Matcher, glob_match, list_matches, masked_match, string_match
from pywrap.request import Endpoint, Request
from pywrap.rules import LineProblem, PatternList, Rule
from pywrap.tables import logical_lines

LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
NUMBERS = st.text(alphabet="0123456789xXabcdefABCDEF. +-\t", max_size=24)


# -- numbers, against libc ------------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(NUMBERS)
def test_inet_aton_is_libcs(text):
    try:
        want = int.from_bytes(socket.inet_aton(text), "big")
    except OSError:
        want = None
    assert inet_aton(text) == want


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789 +-x\t\v", max_size=30))
def test_atoi_is_libcs(text):
    LIBC.atoi.restype = ctypes.c_int
    assert atoi(text) == LIBC.atoi(text.encode())


def sscanf_whole(text: str, conversion: bytes) -> int | None:
    """libc's sscanf(text, "<conversion>%n") when it converts and uses the whole text, else None."""
    value, used = ctypes.c_uint(), ctypes.c_int(-1)
    got = LIBC.sscanf(text.encode(), conversion + b"%n", ctypes.byref(value), ctypes.byref(used))
    return value.value if got == 1 and used.value == len(text.encode()) else None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789 +-x\t", max_size=25))
def test_scan_unsigned_is_sscanf(text):
    assert scan_unsigned(text) == sscanf_whole(text, b"%u")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789 +-", max_size=25))
def test_scan_octal_is_sscanf(text):
    assert scan_octal(text) == sscanf_whole(text, b"%o")


# Digit runs of every length that matters to C: around the 32- and 64-bit limits (ULONG_MAX has 20 digits)
# and past Python's 4,300-digit int() limit, where nothing may raise (issue 13, item 3).
RUNS = st.one_of(st.integers(0, 2**70).map(str), st.sampled_from([str(2**32), str(2**63), str(2**64 - 1),
                 str(2**64), "0" * 30 + "7", "9" * 19, "9" * 21]), st.integers(4290, 5200).map(lambda n: "1" * n))
SIGNED = st.tuples(st.sampled_from(["", " ", "\t"]), st.sampled_from(["", "+", "-"]), RUNS,
                   st.sampled_from(["", "", "x", " "])).map("".join)


def sscanf_signed(text: str) -> int | None:
    value, used = ctypes.c_int(), ctypes.c_int(-1)
    got = LIBC.sscanf(text.encode(), b"%d%n", ctypes.byref(value), ctypes.byref(used))
    return value.value if got == 1 and used.value == len(text.encode()) else None


@settings(max_examples=300, deadline=None)
@given(SIGNED)
def test_long_and_overflowing_numbers_are_libcs(text):
    """scanf's %u, %d, %o and atoi saturate as glibc's strtoul / strtol do, then narrow to 32 bits."""
    LIBC.atoi.restype = ctypes.c_int
    assert atoi(text) == LIBC.atoi(text.encode())
    assert scan_unsigned(text) == sscanf_whole(text, b"%u")
    assert scan_int(text) == sscanf_signed(text)
    assert scan_octal(text.replace("9", "7").replace("8", "7")) == sscanf_whole(text.replace("9", "7").replace("8", "7"), b"%o")


@settings(max_examples=200, deadline=None)
@given(st.tuples(st.sampled_from(["", "0", "0x", "0X"]), RUNS, st.sampled_from(["", ".", "z"])).map("".join))
def test_strtoul_prefix_is_libcs(text):
    end = ctypes.c_char_p()
    LIBC.strtoul.restype = ctypes.c_ulong
    LIBC.strtoul.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
    data = ctypes.create_string_buffer(text.encode())
    value = LIBC.strtoul(data, ctypes.byref(end), 0)
    used = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(data)
    assert strtoul_prefix(text) == ((value, used) if used else None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(RUNS, st.sampled_from(["0x1f", "010", "255", "0"])), min_size=1, max_size=4).map(".".join))
def test_inet_aton_takes_parts_of_any_length(text):
    try:
        want = int.from_bytes(socket.inet_aton(text), "big")
    except OSError:
        want = None
    assert inet_aton(text) == want
    assert dot_quad_addr(text) == (want if want is not None and text.count(".") == 3 else INADDR_NONE)


@pytest.mark.parametrize("text", ["fe80::1", "fe80::1%lo", "fe80::1%1", "fe80::1%01", "fe80::1%4294967295",
                                  "fe80::1%4294967296", "fe80::1%" + "9" * 5000, "fe80::1%+1", "fe80::1%",
                                  "fe80::1%lo%lo", "fe80::1%nosuchif0", "2001:db8::1%lo", "2001:db8::1%7",
                                  "ff02::1%lo", "ff05::1%lo", "::ffff:10.0.0.1%1", "1.2.3.4", "fe80::1%LO"])
def test_scoped_ipv6_is_getaddrinfos(text):
    """The link-local form of a peer (`fe80::1%eth0`) and of patterns: the scope glibc accepts (an existing
    interface for a link-local address, or a number below 2**32), then dropped."""
    try:
        infos = socket.getaddrinfo(text.encode(), None, socket.AF_INET6, socket.SOCK_STREAM, 0,
                                   socket.AI_NUMERICHOST)
        want = socket.inet_pton(socket.AF_INET6, infos[0][4][0].partition("%")[0])
    except OSError:
        want = None
    assert inet_pton6_scoped(text) == want


def test_dot_quad_needs_four_runs_and_cannot_say_all_ones():
    assert dot_quad_addr("10.0.0.1") == 0x0A000001
    assert dot_quad_addr("010.0.0.1") == 0x08000001
    assert dot_quad_addr("10.0.1") == INADDR_NONE
    assert dot_quad_addr("255.255.255.255") == INADDR_NONE


# -- logical lines ------------------------------------------------------------------------------------
def texts(data: bytes):
    return [(x.text, x.line, x.complete) for x in logical_lines(data)]


def test_continuation_reports_the_last_physical_line():
    assert texts(b"sshd: \\\n10.0.0.1\n") == [("sshd: 10.0.0.1\n", 2, True)]


def test_backslash_cr_lf_is_no_continuation():
    assert texts(b"a\\\r\nb\n") == [("a\\\r\n", 1, True), ("b\n", 2, True)]


def test_limits():
    assert texts(b"x" * 2046 + b"\n")[0][2] is True
    first = texts(b"x" * 2047 + b"\n")[0]
    assert first == ("x" * 2047, 0, False)


def test_nul_glues_the_next_physical_line():
    assert texts(b"ab\0cd\nef\n") == [("abef\n", 1, True)]


def test_trailing_continuation_at_eof_is_unfinished():
    assert texts(b"a \\\n") == [("a ", 1, False)]
    assert texts(b"\\\n") == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000))
def test_reader_and_parser_take_anything(data):
    lines = list(logical_lines(data))
    for earlier, later in zip(lines, lines[1:], strict=False):
        assert earlier.line <= later.line
    for line in lines:
        assert len(line.text) <= 2047
        assert line.complete == line.text.endswith("\n")
    for entry in parse_table(data, "t"):
        assert isinstance(entry, (Rule, LineProblem))


# -- grammar ------------------------------------------------------------------------------------------
def rule(text: str) -> Rule:
    (entry,) = parse_table(text.encode("latin-1"), "t")
    assert isinstance(entry, Rule)
    return entry


def test_fields_split_outside_brackets_only():
    r = rule("sshd: [2001:db8::1]/64 : deny\n")
    assert r.clients.patterns == ("[2001:db8::1]/64",)
    assert [o.keyword for o in r.options] == ["deny"]
    assert rule("a]b:c[d:e\n").daemons.patterns == ("a]b:c[d",)


def test_except_nests_to_the_right():
    r = rule("ALL: a, b EXCEPT c EXCEPT d\n")
    assert r.clients == PatternList(("a", "b"), PatternList(("c",), PatternList(("d",))))
    assert r.clients.tokens() == ("a", "b", "EXCEPT", "c", "EXCEPT", "d")


def test_option_fields():
    r = rule("sshd: ALL: spawn echo a\\:b : severity = = info: deny\n")
    assert [(o.keyword, o.value) for o in r.options] == [("spawn", "echo a:b"), ("severity", "= info"),
                                                        ("deny", "")]
    assert parse_option_field("  kw=value  ").value == "value"
    assert rule("sshd: ALL:\n").options[0].keyword == ""
    assert rule("sshd: ALL\n").options is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "EXCEPT", "except", "10.0.0.1", "[x", "y]"]), max_size=12),
       st.sampled_from([" ", ",", " , ", "\t"]))
def test_list_tokens_round_trip(tokens, sep):
    r = rule("d: " + sep.join(tokens) + "\n")
    assert [t.upper() if t.upper() == "EXCEPT" else t for t in r.clients.tokens()] == \
        [t.upper() if t.upper() == "EXCEPT" else t for t in tokens]


# -- matching -----------------------------------------------------------------------------------------
def reference_list_match(tokens, test):
    """The reference's recursive list_match, written plainly, as an oracle for the iterative one."""
    for i, token in enumerate(tokens):
        if token.upper() == "EXCEPT":
            return False
        if test(token):
            rest = tokens[i + 1:]
            while rest and rest[0].upper() != "EXCEPT":
                rest = rest[1:]
            if not rest:
                return True
            return not reference_list_match(rest[1:], test)
    return False


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["y", "n", "EXCEPT"]), max_size=14))
def test_iterative_except_equals_the_references_recursion(tokens):
    plist = rule("d: " + " ".join(tokens) + "\n").clients
    assert list_matches(plist, lambda t: t == "y") == reference_list_match(tokens, lambda t: t == "y")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab*?", max_size=8), st.text(alphabet="abAB", max_size=10))
def test_glob_equals_a_regex(pattern, value):
    import re

    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    assert glob_match(pattern, value) == bool(re.fullmatch(regex, value, re.S | re.I))


@pytest.mark.parametrize("pattern,value,want", [
    (".example.com", "good.example.com", True), (".example.com", ".example.com", False),
    ("good.", "good.example.com", True), ("ALL", "x", True), ("KNOWN", "unknown", False),
    ("[::1]", "0:0:0:0:0:0:0:1", True), ("[1.2.3.4]", "1.2.3.4", False), ("10.0.0.1", "::ffff:10.0.0.1", True),
    ("un*", "unknown", True), ("UNKNOWN", "unknown", True), ("a.", "A.B", True),
])
def test_string_match(pattern, value, want):
    assert string_match(pattern, value) is want


@pytest.mark.parametrize("net,mask,addr,want", [
    ("10.0.0.0", "8", "10.9.8.7", True), ("10.0.0.1", "8", "10.0.0.1", False),
    ("10.0.0.1", "255.255.255.255", "10.0.0.1", False), ("0.0.0.0", "0", "1.2.3.4", False),
    ("0.0.0.0", "0.0.0.0", "1.2.3.4", True), ("10.0.0.0", "8x", "10.0.0.1", True),
    ("[2001:db8::1]", "32", "2001:db8::5", True), ("[::]", "0", "::1", True),
    ("10.0.0.0", "8", "::ffff:10.0.0.1", True), ("[::ffff:10.0.0.0]", "104", "::ffff:10.0.0.1", False),
])
def test_masked_match(net, mask, addr, want):
    assert masked_match(net, mask, addr) is want


def test_names_are_looked_up_only_when_a_pattern_needs_them():
    asked = []

    def lookup(endpoint):
        asked.append(endpoint.address)
        return "host.example.com"

    client = Endpoint("10.0.0.1", 1234, (socket.AF_INET, bytes([10, 0, 0, 1])), lookup)
    request = Request("sshd", client, Endpoint())
    matcher = Matcher(request, CollectingDiagnostics())
    assert matcher.client_list(PatternList(("10.0.0.0/8", "10.0.0.2", "10.0.0.*", "ALL")))
    assert asked == []
    assert not matcher.client_list(PatternList(("10.0.0.2", "10.1.")))
    assert asked == []
    assert matcher.client_list(PatternList(("10.0.0.2", ".example.com")))
    assert asked == ["10.0.0.1"]
    assert matcher.client_list(PatternList(("LOCAL", "KNOWN")))
    assert asked == ["10.0.0.1"]  # computed once


# -- expansion ----------------------------------------------------------------------------------------
def test_sanitising_applies_to_expansions_only():
    client = Endpoint("10.0.0.1", 5, (socket.AF_INET, bytes([10, 0, 0, 1])), lambda e: "evil;rm -rf /`x`")
    request = Request("sshd", client, Endpoint(), user="bob smith")
    out = expand("echo %n %u; ok", request, print)
    assert out == "echo evil_rm_-rf_/_x_ bob_smith; ok"
    assert request.user == "bob_smith"  # written back, as the reference does


@given(st.text(max_size=60))
def test_sanitise_leaves_only_safe_bytes(text):
    assert set(sanitise(text)) <= SAFE


def test_expansion_too_long():
    request = Request("d" * 100, Endpoint(), Endpoint())
    with pytest.raises(ExpansionTooLong):
        expand("%d" * 100, request, print)
