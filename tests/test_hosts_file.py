"""/etc/hosts as glibc reads it, IPv4-mapped and scoped addresses in it, and numbers too long for Python's int().

Three oracles, all in a private mount namespace with the test's own /etc/hosts: glibc itself (getaddrinfo and
getnameinfo, through nshosts.py) for every name and address question our resolver answers; Debian's libwrap
(its sock_hostname, through ctypes) for the double-reverse check of mapped, scoped and ordinary client
addresses; and Debian's tcpdmatch beside ours (sandbox.py) for what reaches a verdict: clients and servers
given by name, by address and as daemon@server. Not here: a server given as a scoped address
(`sshd@fe80::3%lo`), which our tcpdmatch still reads without its scope (pywrap/cli/tcpdmatch.py).
"""

from __future__ import annotations

import pytest
from compare import differences
from nshosts import ask_both
from sandbox import run_cases

BIG = "1" * 5000  # past Python's 4,300-digit int() limit

HOSTS = """127.0.0.1 localhost
::1 localhost ip6-localhost
::ffff:192.0.2.70  mapped.example.test
::FFFF:192.0.2.71  upper.example.test
::ffff:c000:248  hexmapped.example.test
192.0.2.72 plain.example.test mixed.example.test
::ffff:192.0.2.72 mixed.example.test
::ffff:192.0.2.80 both.example.test
192.0.2.80 both.example.test
fe80::1%lo scoped.example.test
fe80::2%1 numscope.example.test
fe80::3 ll.example.test
2001:db8::9 v6.example.test
192.0.2.10 server.example.test
010.0.0.1 octal.example.test
0x7f.0.0.2 hex.example.test
127.1 short.example.test
1.2.3.4
1.2.3.6\tvt\vsep.example.test\ffeed.example.test
1.2.3.7 nb\xa0sp.example.test
1.2.3.8 nel\x85x.example.test
1.2.3.10 cr.example.test\r
1.2.3.11 nul\0x.example.test other.example.test
1.2.3.12 hash#x.example.test
  1.2.3.13 lead.example.test   # comment
1.2.3.14 trail.example.test.
1.2.3.15 Case.Example.Test
"""
# lines whose address has a part too long for Python's int() (item 3: every lookup crashed on them)
BIG_LINES = f"1.2.3.{BIG} big.example.test\n10.0.0.9 big.example.test\n{BIG}.1.1.1 bigger.example.test\n"

NAMES = ["mapped.example.test", "upper.example.test", "hexmapped.example.test", "plain.example.test",
         "mixed.example.test", "both.example.test", "scoped.example.test", "numscope.example.test",
         "ll.example.test", "v6.example.test", "octal.example.test", "hex.example.test", "short.example.test",
         "big.example.test", "bigger.example.test", "localhost", "ip6-localhost", "", "vt", "sep.example.test",
         "feed.example.test", "nb", "sp.example.test", "nel", "cr.example.test", "nul", "other.example.test",
         "hash", "x.example.test", "lead.example.test", "comment", "trail.example.test", "trail.example.test.",
         "case.example.test", "CASE.EXAMPLE.TEST", "nosuch.example.test"]
ADDRESSES = ["192.0.2.70", "::ffff:192.0.2.70", "192.0.2.71", "192.0.2.72", "::ffff:192.0.2.72", "192.0.2.80",
             "fe80::1", "fe80::2", "fe80::3", "fe80::3%lo", "2001:db8::9", "127.0.0.1", "::1", "8.0.0.1",
             "127.0.0.2", "10.0.0.9", "1.2.3.4", "1.2.3.6", "1.2.3.10", "1.2.3.11", "1.2.3.13", "1.2.3.15",
             "192.0.2.99"]
# client socket addresses for the double-reverse check; a %scope is the peer's sin6_scope_id
PEERS = ["192.0.2.70", "::ffff:192.0.2.70", "192.0.2.71", "192.0.2.72", "::ffff:192.0.2.72", "192.0.2.80",
         "fe80::3", "fe80::3%lo", "fe80::3%1", "fe80::3%99", "fe80::1", "fe80::1%lo", "2001:db8::9",
         "2001:db8::9%5", "127.0.0.1", "::1", "::ffff:127.0.0.1", "1.2.3.4", "1.2.3.6", "1.2.3.10", "1.2.3.15",
         "192.0.2.99"]


def ask(hosts: str) -> dict:
    queries = [{"name": n, "family": f} for n in NAMES for f in (None, 4, 6)] + [{"address": a} for a in ADDRESSES]
    queries += [{"verify": a} for a in PEERS]
    return dict(zip([str(q) for q in queries], zip(queries, ask_both(hosts, queries), strict=True), strict=True))


@pytest.fixture(scope="module")
def answers():
    return ask(HOSTS)


def test_hosts_file_is_read_as_glibc_reads_it(answers):
    """Every name (AF_UNSPEC, AF_INET, AF_INET6) and address question: the same answer as glibc's. Mapped lines
    answer IPv4 questions with their IPv4 address (and ::1 answers them with 127.0.0.1), addresses are
    inet_pton's (no 127.1, 010.0.0.1 or %scope), fields are split at C blanks only, a NUL ends the line, a line
    without names names the host ""."""
    wrong = [(query, answer) for query, answer in answers.values()
             if "verify" not in query and answer["glibc"] != answer["ours"]]
    assert wrong == []


def test_client_names_are_checked_as_debians_libwrap_checks_them(answers):
    """The double-reverse check of a client address, against libwrap's own (sock_hostname): a mapped client is
    named from a mapped /etc/hosts line, and a scoped (link-local) peer never verifies, with the reference's
    warning (`host name/address mismatch: fe80::3%lo != ll.example.test`)."""
    checked = [(query, answer) for query, answer in answers.values() if "verify" in query]
    assert [(q, a) for q, a in checked if a["glibc"] != a["ours"]] == []
    assert answers[str({"verify": "::ffff:192.0.2.70"})][1]["ours"]["name"] == "mapped.example.test"
    assert answers[str({"verify": "fe80::3%lo"})][1]["ours"] == {
        "name": "paranoid", "warnings": ["warning: host name/address mismatch: fe80::3%lo != ll.example.test"]}


def test_five_thousand_digit_addresses_in_the_hosts_file_are_no_addresses():
    """Item 3: such a line made every name lookup crash (int() of 5,000 digits); to glibc it is no address."""
    answers = ask(BIG_LINES + HOSTS)
    wrong = [(query, answer) for query, answer in answers.values() if answer["glibc"] != answer["ours"]]
    assert wrong == []
    assert answers[str({"name": "big.example.test", "family": None})][1]["ours"] == {
        "canonical": "big.example.test", "addresses": ["10.0.0.9"]}


def test_the_oracle_saw_the_cases_it_is_for(answers):
    """The comparison above means something only if glibc really answered these (the private /etc/hosts is in
    place)."""
    def glibc(query: dict):
        return answers[str(query)][1]["glibc"]

    assert glibc({"name": "mapped.example.test", "family": 4}) == {"canonical": "mapped.example.test",
                                                                    "addresses": ["192.0.2.70"]}
    assert glibc({"address": "192.0.2.70"}) == {"name": "mapped.example.test"}
    assert glibc({"name": "short.example.test", "family": None}) is None
    assert glibc({"address": "1.2.3.4"}) == {"name": ""}


FILES = {"hosts.allow": "sshd: .example.test : spawn echo %n %h %a %N %A\nsshd: [fe80::]/10 KNOWN\n"
                        "ftpd: 192.0.2.0/24 EXCEPT 192.0.2.80\nALL@mapped.example.test: ALL\n",
         "hosts.deny": "ALL: ALL\n"}
CLIENTS = NAMES[:17] + ["192.0.2.70", "::ffff:192.0.2.70", "::FFFF:192.0.2.70", "fe80::1", "fe80::1%lo", "fe80::3",
                        "fe80::3%1", "::ffff:c000:246", "192.0.2.72", "::1", "fe80::1%bogus"]
SERVERS = ["local@192.0.2.10", "sshd", "ftpd", "sshd@mapped.example.test", "sshd@::ffff:192.0.2.70",
           "sshd@192.0.2.70", "sshd@ll.example.test", "sshd@fe80::3", "sshd@server.example.test",
           "sshd@hexmapped.example.test", "sshd@big.example.test"]
# arguments with a 5,000-digit part (item 3: our tcpdmatch crashed on them)
LONG = [["sshd", f"1.2.3.{BIG}"], [f"sshd@1.2.3.{BIG}", "192.0.2.70"], ["sshd", f"{BIG}.1.1.1"],
        ["sshd@big.example.test", f"root@1.2.3.{BIG}"]]


@pytest.fixture(scope="module")
def tcpdmatch_results():
    cases = [{"files": FILES, "args": [server, client]} for server in SERVERS for client in CLIENTS]
    return cases, run_cases(cases, etc={"hosts": HOSTS})


def test_names_and_addresses_from_the_hosts_file_agree_with_debian_tcpdmatch(tcpdmatch_results):
    """Issue 13 item 10: `tcpdmatch -d local@192.0.2.10 mapped.example.test` names the mapped client
    (Debian's did, ours said only its address and that the reverse lookup failed); and item 3: a hosts line
    with a 5,000-digit address part made every name lookup crash."""
    cases, results = tcpdmatch_results
    failures = [f"{case['args']}:\n" + "\n".join(differences(result))
                for case, result in zip(cases, results, strict=True) if differences(result)]
    assert failures == []


def test_five_thousand_digit_arguments_and_hosts_lines():
    """Item 3: our tcpdmatch crashed on these. Arguments are looked up as names and not found, as in Debian's
    (whose warning shows all 5,000 digits; ours the 127 bytes tcpdmatch keeps of an argument, so the
    warning texts are compared only where no such argument is printed)."""
    cases = [{"files": FILES, "args": args} for args in LONG]
    cases += [{"files": FILES, "args": [server, "big.example.test"]} for server in ("sshd", "sshd@big.example.test")]
    for case, result in zip(cases, run_cases(cases, etc={"hosts": BIG_LINES + HOSTS}), strict=True):
        if case["args"] in LONG:
            assert differences(result, compare_logs=False) == [], case["args"][0][:20]
            assert result["ours"]["rc"] == 1 and ": host not found" in result["ours"]["stderr"]
        else:
            assert differences(result) == [], case["args"]
            assert "client:   address  10.0.0.9\n" in result["ours"]["stdout"]


def test_the_mapped_client_is_named(tcpdmatch_results):
    cases, results = tcpdmatch_results
    index = next(i for i, case in enumerate(cases) if case["args"] == ["local@192.0.2.10", "mapped.example.test"])
    assert results[index]["ours"]["stdout"].startswith(
        "client:   hostname mapped.example.test\nclient:   address  ::ffff:192.0.2.70\n")
