"""The fast paths must never change a verdict: plain lines parse as the grammar parses them, and the indexed
runs of plain address rules find the same first match as the rule-by-rule scan — checked on random tables
in-process, and against Debian's tcpdmatch on fail2ban-sized files."""

from __future__ import annotations

import random

import pytest
from compare import differences, verdicts
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sandbox import run_cases

from pywrap import access, index, settings
from pywrap.diag import CollectingDiagnostics
from pywrap.grammar import parse_rule
from pywrap.options import DryRun
from pywrap.plainrules import parse_address_line, parse_plain
from pywrap.request import Endpoint, Request
from pywrap.text import fold


@hypothesis_settings(max_examples=600, deadline=None)
@given(st.text(alphabet="sdhALEXCPTept0123456789./:, \t\r@[]#x-_*", max_size=40))
def test_plain_lines_parse_as_the_grammar_parses_them(body):
    text = body + "\n"
    plain = parse_plain(text, "f", 3)
    if plain is not None:
        assert plain == parse_rule(text, "f", 3)
    address_line = parse_address_line(text, "f", 3)
    if address_line is not None:
        assert address_line.rule() == parse_rule(text, "f", 3)
        assert address_line.value == index.canonical_quad(address_line.token)


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.sampled_from(["ALL", "sshd", "EXCEPT", "in.ftpd", "a@b"]), st.sampled_from([" ", "\t", ", ", ""]),
       st.lists(st.integers(0, 300), min_size=4, max_size=4), st.sampled_from(["", "0", " ", ",\r", "x"]))
def test_address_lines_parse_as_the_grammar_parses_them(daemon, gap, octets, tail):
    text = f"{daemon}:{gap}{'.'.join(map(str, octets))}{tail}\n"
    address_line = parse_address_line(text, "f", 3)
    rule = parse_rule(text, "f", 3)
    if address_line is not None:
        assert address_line.rule() == rule and address_line.value == index.canonical_quad(address_line.token)
    elif daemon in ("ALL", "sshd", "in.ftpd") and max(octets) < 256 and tail in ("", " ", ",\r"):
        raise AssertionError(f"{text!r} is an address line")


def random_table(rng: random.Random, size: int) -> str:
    lines = []
    for _ in range(size):
        roll = rng.random()
        octets = [str(rng.choice([0, 1, 10, 127, 192, 255, rng.randrange(256)])) for _ in range(4)]
        address = ".".join(octets)
        if roll < 0.6:
            lines.append(f"ALL: {address}")
        elif roll < 0.7:
            lines.append(f"ALL: {address}/{rng.choice(['8', '16', '24', '32', '255.255.0.0', '0', '33'])}")
        elif roll < 0.75:
            lines.append(f"sshd: {address}, {'.'.join(reversed(octets))}")
        elif roll < 0.8:
            lines.append(f"ALL: 0{address}")  # not canonical: scanned, not indexed
        elif roll < 0.85:
            lines.append(f"ALL: {address} : deny")
        else:
            lines.append(f"ALL: {octets[0]}.{octets[1]}.")
    return "\n".join(lines) + "\nALL: ALL : allow\n"


def decide(path: str, address: str) -> tuple:
    request = Request("sshd", Endpoint(address), Endpoint())
    verdict = access.decide(request, CollectingDiagnostics(), DryRun(), "/nonexistent", path)
    return verdict.granted, verdict.rule.line if verdict.rule else None


@pytest.mark.parametrize("seed", range(6))
def test_indexed_and_scanned_decisions_are_identical(seed, tmp_path, monkeypatch):
    rng = random.Random(seed)
    table = tmp_path / "hosts.deny"
    table.write_text(random_table(rng, 400))
    queries = [".".join(str(rng.choice([0, 1, 10, 127, 192, 255, rng.randrange(256)])) for _ in range(4))
               for _ in range(300)]
    queries += [f"::ffff:{q}" for q in queries[:30]] + ["010.0.0.1", "unknown", "::1"]
    access.parsed_table.cache_clear()
    indexed = [decide(str(table), q) for q in queries]
    monkeypatch.setattr(index, "MIN_RUN", 10**9)
    access.parsed_table.cache_clear()  # parsed again: every rule on its own
    scanned = [decide(str(table), q) for q in queries]
    assert indexed == scanned
    assert any(line is not None and line < 400 for _, line in indexed)  # rules inside runs were hit


# Fuzz finding index-octet-of-5000-digits: a client part past Python's 4300-digit int() limit raised
# ValueError inside the index (the scan just matches nothing). Each piece goes into each place of a quad.
HOSTILE_PARTS = ["1" * 5000, "0" * 5000, "9" * 4301, "0" + "1" * 4400, "\u0663", "\u00b2", "", " 1", "1\n",
                 "+1", "-1", "0x0a", "0377", "256", "4294967297"]
HOSTILE_CLIENTS = [".".join(piece if i == place else part for i, part in enumerate(["10", "0", "0", "1"]))
                   for piece in HOSTILE_PARTS for place in range(4)]
HOSTILE_CLIENTS += [f"::ffff:{c}" for c in HOSTILE_CLIENTS[:8]] + ["1" * 5000, "10.0.0.1." + "1" * 5000]


def test_any_client_string_gets_the_scans_answer(tmp_path, monkeypatch):
    """The index never raises where the scan does not: its answer for any client string is the scan's."""
    rules = [f"ALL: 10.0.0.{n}" for n in range(2, 20)] + ["ALL: 10.1.0.0/16", "ALL: 10.2.", "ALL: .example.com"]
    table = tmp_path / "hosts.deny"
    table.write_text("\n".join(rules) + "\nALL: ALL : allow\n")
    access.parsed_table.cache_clear()
    assert any(isinstance(x, index.Run) for x in access.parsed_table(table.read_bytes(), str(table)))
    indexed = [decide(str(table), q) for q in HOSTILE_CLIENTS]
    monkeypatch.setattr(index, "MIN_RUN", 10**9)
    access.parsed_table.cache_clear()
    assert [decide(str(table), q) for q in HOSTILE_CLIENTS] == indexed
    assert indexed[HOSTILE_CLIENTS.index("10.0.0.0377")] == (True, 22)  # no rule but the last: parsed, not raised


def test_a_long_client_costs_the_index_little_memory(tmp_path):
    """A word run's lookup tries the client's prefixes and suffixes at dots: all of them would be quadratic
    (20,000 dots: 200 MB; 100,000: 5 GB, a MemoryError), where no key is longer than a table line."""
    import tracemalloc

    table = tmp_path / "hosts.deny"
    table.write_text("".join(f"ALL: .d{n}.example.com\n" for n in range(20)) + "ALL: ALL : allow\n")
    access.parsed_table.cache_clear()
    assert any(isinstance(x, index.Run) for x in access.parsed_table(table.read_bytes(), str(table)))
    for client in ("." * 20_000, "a." * 10_000 + "d3.example.com"):
        tracemalloc.start()
        try:
            verdict = decide(str(table), client)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, peak
        assert verdict == ((True, 21) if client.startswith(".") else (False, 4))


def fail2ban_file(rng: random.Random, size: int) -> tuple[str, list[str]]:
    banned = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
              for _ in range(size)]
    return "".join(f"ALL: {a}\n" for a in banned) + "ALL: 10.0.0.0/8\nsshd: ALL\n", banned


def test_fail2ban_sized_files_agree_with_reference():
    rng = random.Random(7)
    text, banned = fail2ban_file(rng, 3000)
    queries = banned[::250] + [banned[-1], "10.1.2.3", "192.0.2.1", f"::ffff:{banned[5]}", "0" + banned[9]]
    cases = [{"files": {"hosts.deny": text}, "args": ["in.ftpd", q]} for q in queries]
    results = run_cases(cases)
    for query, result in zip(queries, results, strict=True):
        assert differences(result) == [], query
    assert verdicts(results[0]["ours"]["stdout"]) == ["denied"]
    assert verdicts(results[-4]["ours"]["stdout"]) == ["denied"]  # 10.1.2.3, by the network rule
    assert verdicts(results[-3]["ours"]["stdout"]) == ["granted"]


NAMES = ["mail.example.com", "a.b.example.com", "example.com", "host-1.evil.org", "www.evil.org", "localhost",
         "unknown", "paranoid", "x_y.lan", "10.example.com", ".example.com", "www.", ".1"]
WORDS = [".example.com", ".com", "example.com", "Mail.Example.COM", "host-1.evil.org", ".evil.org", "localhost",
         "unknown", "www.", "a.b.", "10.", "192.168.", "127.0.0.", ".1", ".0.1", "010.0.0.1", "x_y.lan", "."]


def random_word_table(rng: random.Random, size: int) -> str:
    """Block-list shapes: host names, domains and prefixes, mixed with addresses and networks."""
    lines = [f"ALL: 192.168.0.{n}" for n in range(4)] * 5  # decided before any rule asks for the name
    for _ in range(size):
        roll = rng.random()
        address = f"{rng.choice([10, 127, 192])}.{rng.choice([0, 168])}.0.{rng.randrange(4)}"
        if roll < 0.45:
            lines.append(f"ALL: {rng.choice(WORDS)}")
        elif roll < 0.65:
            lines.append(f"ALL: {address}")
        elif roll < 0.8:
            tokens = [rng.choice(WORDS), address, f"{address}/24", rng.choice(WORDS)]
            rng.shuffle(tokens)
            lines.append(f"ALL: {', '.join(tokens[:rng.randrange(1, 5)])}")
        elif roll < 0.95:
            lines.append(f"sshd: {rng.choice(WORDS)}")
        elif roll < 0.97:
            lines.append(f"ALL: *.{rng.choice(NAMES)}")  # a wildcard: scanned, not indexed
        else:
            lines.append(f"ALL: {rng.choice(NAMES)} : deny")
    return "\n".join(lines) + "\nALL: ALL : allow\n"


def decide_named(path: str, address: str, name: str) -> tuple:
    """The verdict, the rule, and every diagnostic with its context — including when, and in which rule's
    context, the host name was looked up (the lookup reports itself as a warning)."""
    diag = CollectingDiagnostics()

    def lookup(endpoint: Endpoint) -> str:
        diag.warning(f"looked up {name}")
        return name

    client = Endpoint(address, 1234, (2, bytes(4)), lookup)
    verdict = access.decide(Request("sshd", client, Endpoint()), diag, DryRun(), "/nonexistent", path)
    return verdict.granted, verdict.rule.line if verdict.rule else None, diag.records


@pytest.mark.parametrize("seed", range(6))
def test_word_runs_decide_and_look_names_up_as_the_scan_does(seed, tmp_path, monkeypatch):
    rng = random.Random(100 + seed)
    table = tmp_path / "hosts.deny"
    table.write_text(random_word_table(rng, 300))
    queries = [(f"{rng.choice([10, 127, 192, 1])}.{rng.choice([0, 168])}.0.{rng.randrange(4)}",
                rng.choice(NAMES + [n.upper() for n in NAMES])) for _ in range(200)]
    queries += [("::ffff:127.0.0.1", "localhost"), ("unknown", "unknown"), ("::1", "localhost")]
    access.parsed_table.cache_clear()
    runs = [x for x in access.parsed_table(table.read_bytes(), str(table)) if isinstance(x, index.Run)]
    assert any(run.words is not None for run in runs)
    indexed = [decide_named(str(table), *q) for q in queries]
    monkeypatch.setattr(settings, "CACHE_DIR", str(tmp_path / "cache"))  # the same, from mapped arrays
    decide_named(str(table), "1.2.3.4", "x")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    access.parsed_table.cache_clear()
    assert [decide_named(str(table), *q) for q in queries] == indexed
    monkeypatch.setattr(settings, "CACHE_DIR", "")
    monkeypatch.setattr(index, "MIN_RUN", 10**9)
    access.parsed_table.cache_clear()  # parsed again: every rule on its own
    scanned = [decide_named(str(table), *q) for q in queries]
    assert indexed == scanned
    assert any(line is not None and line < 300 for _, line, _ in indexed)
    assert any(records for _, _, records in indexed) and any(not records for _, _, records in indexed)


def test_word_runs_are_indexed():
    text = "".join(f"ALL: .d{n}.example.com host{n}.example.org 10.{n % 256}.\n" for n in range(100))
    items = access.parsed_table(text.encode(), "hosts.deny")
    assert len(items) == 1 and isinstance(items[0], index.Run) and len(items[0]) == 100


@hypothesis_settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="aB.1-", min_size=1, max_size=7), st.text(alphabet="Ab.1-", max_size=7))
def test_word_keys_match_exactly_as_string_match(pattern, value):
    """A word key is found among a value's candidates exactly when the matcher's string_match says so."""
    from pywrap.patterns import string_match

    key = index._word(pattern)
    if key is not None:
        assert (key in index._candidates(fold(value))) == string_match(pattern, value)


def test_block_lists_of_names_agree_with_reference():
    """A long run of domain, host-name and prefix rules (a block list), asked by address (the name then
    comes from /etc/hosts) and by name, against Debian's tcpdmatch: same verdicts, lines and warnings."""
    rng = random.Random(11)
    hosts = "".join(f"10.9.{n}.1 h{n}.d{n % 40}.block.example\n" for n in range(60))
    shapes = [lambda: f"ALL: .d{rng.randrange(80)}.block.example",
              lambda: f"ALL: h{rng.randrange(120)}.d1.block.example",
              lambda: f"ALL: 10.9.{rng.randrange(90)}.",
              lambda: f"ALL: H{rng.randrange(60)}.D{rng.randrange(40)}.Block.Example"] * 5
    shapes.append(lambda: f"in.ftpd: .d{rng.randrange(80)}.block.example, 10.8.{rng.randrange(9)}.1")
    rules = [rng.choice(shapes)() for _ in range(400)]
    text = "\n".join(rules) + "\nALL: ALL : allow\n"
    assert any(isinstance(x, index.Run) for x in access.parsed_table(text.encode(), "hosts.deny"))
    queries = [f"10.9.{rng.randrange(70)}.1" for _ in range(12)] + ["10.8.3.1", "h5.d5.block.example",
                                                                    "nothing.example", "10.7.0.1"]
    cases = [{"files": {"hosts.deny": text}, "args": ["in.ftpd", q]} for q in queries]
    results = run_cases(cases, etc={"hosts": "127.0.0.1 localhost\n" + hosts})
    for query, result in zip(queries, results, strict=True):
        assert differences(result) == [], query
    outcomes = {v for r in results for v in verdicts(r["ours"]["stdout"])}
    assert "denied" in outcomes and "granted" in outcomes


@hypothesis_settings(max_examples=800, deadline=None)
@given(st.text(alphabet="ab, \t\r\n:[]\\x0c", max_size=30))
def test_plain_splitting_is_the_grammars(text):
    """tcpdchk reads plain lines without pyparsing: the same fields and tokens as the grammar gives."""
    from pywrap.grammar import list_tokens, split_fields
    from pywrap.text import TCPDCHK_SEPARATORS, plain_fields, split_list

    assert split_list(text) == list_tokens(text)
    assert split_list(text, TCPDCHK_SEPARATORS) == list_tokens(text, for_tcpdchk=True)
    fields = plain_fields(text)
    if fields is not None:
        assert fields == split_fields(text)


@hypothesis_settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(list(b"ab #\n\r\t\\\0:")), max_size=40).map(bytes),
       st.sampled_from([4, 6, 9, 2048]))
def test_bulk_line_splitting_is_the_readers(data, buffer_size):
    """significant_lines' bulk path (no continuations, NULs or over-long lines) gives what the reference's
    line reader (tables.logical_lines) gives."""
    from pywrap.tables import is_skipped, logical_lines, significant_lines

    slow = [x for x in logical_lines(data, buffer_size) if not x.complete or not is_skipped(x.text)]
    assert significant_lines(data, buffer_size) == slow
