"""The fast paths must never change a verdict: plain lines parse as the grammar parses them, and the indexed
runs of plain address rules find the same first match as the rule-by-rule scan — checked on random tables
in-process, and against Debian's tcpdmatch on fail2ban-sized files."""

from __future__ import annotations

import random

import pytest
from compare import differences, verdicts
from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox import run_cases

from pywrap import access, index
from pywrap.diag import CollectingDiagnostics
from pywrap.grammar import parse_rule
from pywrap.options import DryRun
from pywrap.plainrules import parse_plain
from pywrap.request import Endpoint, Request


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet="sdhALEXCPT0123456789./:, \t\r@[]#x", max_size=40))
def test_plain_lines_parse_as_the_grammar_parses_them(body):
    text = body + "\n"
    plain = parse_plain(text, "f", 3)
    if plain is not None:
        assert plain == parse_rule(text, "f", 3)


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
    access.parsed_table.cache_clear()
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
    indexed = [decide(str(table), q) for q in queries]
    monkeypatch.setattr(index, "MIN_RUN", 10**9)
    scanned = [decide(str(table), q) for q in queries]
    assert indexed == scanned
    assert any(line is not None and line < 400 for _, line in indexed)  # rules inside runs were hit


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
