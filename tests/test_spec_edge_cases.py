"""The verified edge cases of ../shared/spec/edge-cases.md (table A), run through Debian's tcpdmatch and ours.

Each case asserts three things: the reference still gives the verdict the spec recorded (so the harness and
the oracle are sound), ours gives the same stdout, exit status and diagnostics as the reference, and the
matched line the spec names.
"""

from __future__ import annotations

import pytest
from compare import differences, verdicts
from sandbox import run_cases

DENY_ALL = "sshd: ALL\n"
LONG_2046 = "sshd: 10.0.0.1 " + "x" * (2046 - len("sshd: 10.0.0.1 ")) + "\n"
LONG_2047 = "sshd: 10.0.0.1 " + "x" * (2047 - len("sshd: 10.0.0.1 ")) + "\n"

# (id, hosts.allow, hosts.deny, args, expected verdicts, expected "matched" (table, line) or None)
A = None  # absent file
CASES = [
    (1, "ALL: ALL EXCEPT 10.0.0.0/8 EXCEPT 10.1.0.0/16\n", "ALL: ALL\n", "sshd 10.1.2.3", ["granted"], ("hosts.allow", 1)),
    (2, "ALL: ALL EXCEPT 10.0.0.0/8 EXCEPT 10.1.0.0/16\n", "ALL: ALL\n", "sshd 10.2.2.3", ["denied"], ("hosts.deny", 1)),
    (3, A, "sshd: 10.0.0.3 EXCEPT 10.0.0.1, 10.0.0.3\n", "sshd 10.0.0.3", ["granted"], None),
    (4, A, "sshd: EXCEPT 10.0.0.1\n", "sshd 10.0.0.3", ["granted"], None),
    (5, A, "sshd: 10.0.0.1 except 10.0.0.1\n", "sshd 10.0.0.1", ["granted"], None),
    (6, A, "ALL EXCEPT sshd: ALL\n", "sshd 10.0.0.1", ["granted"], None),
    (7, A, "SSHD: all\n", "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (8, A, "sshd: 10.0.0.0/8\n", "sshd 10.9.8.7", ["denied"], ("hosts.deny", 1)),
    (9, A, "sshd: 10.0.0.1/8\n", "sshd 10.0.0.1", ["granted"], None),
    (10, A, "sshd: 10.0.0.1/255.255.255.255\n", "sshd 10.0.0.1", ["granted"], None),
    (11, A, "sshd: 10.0.0.1/32\n", "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (12, A, "sshd: 0.0.0.0/0\n", "sshd 10.0.0.1", ["granted"], None),
    (13, A, "sshd: 0.0.0.0/0.0.0.0\n", "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (14, A, "sshd: 10.0.0.0/8x\n", "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (15, A, "sshd: 10.0.0/8\n", "sshd 10.0.0.1", ["granted"], None),
    (16, A, "sshd: 010.0.0.0/8\n", "sshd 8.1.2.3", ["denied"], ("hosts.deny", 1)),
    (17, A, "sshd: .1\n", "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (18, A, "sshd: 10.0.\n", "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (19, A, "sshd: 10.0\n", "sshd 10.0.0.1", ["granted"], None),
    (20, A, "sshd: 10.0.0.*\n", "sshd 10.0.0.77", ["denied"], ("hosts.deny", 1)),
    (21, "ALL: un*\n", "ALL: ALL\n", "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (22, A, "sshd: [0:0:0:0:0:0:0:1]\n", "sshd ::1", ["denied"], ("hosts.deny", 1)),
    (23, A, "sshd: [2001:db8::1]/32\n", "sshd 2001:db8::5", ["denied"], ("hosts.deny", 1)),
    (24, A, "sshd: 10.0.0.1\n", "sshd ::ffff:10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (25, A, "sshd: [::ffff:10.0.0.1]\n", "sshd ::ffff:10.0.0.1", ["granted"], None),
    (26, A, "sshd: 2001:db8::5\n", "sshd 2001:db8::5", ["granted"], None),
    (28, "sshd: KNOWN\n", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (29, "sshd: UNKNOWN\n", DENY_ALL, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (30, "sshd: UNKNOWN\n", DENY_ALL, "sshd paranoid", ["granted"], ("hosts.allow", 1)),
    (31, "sshd: KNOWN@ALL\n", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (32, "sshd: KNOWN@ALL\n", DENY_ALL, "sshd bob@10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (33, "sshd: r*t@ALL\n", DENY_ALL, "sshd root@10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (34, "sshd@127.0.0.1: ALL\n", DENY_ALL, "sshd@127.0.0.1 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (35, "sshd@127.0.0.1: ALL\n", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (36, "sshd@UNKNOWN: ALL\n", DENY_ALL, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (37, "22: ALL\n", "22: ALL\n", "22 10.0.0.1", ["granted"], None),
    (38, "0: ALL\n", "ALL: ALL\n", "sshd@127.0.0.1 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (39, ".telnetd: ALL\n", "ALL: ALL\n", "in.telnetd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (40, "sshd: ALL: deny\n", A, "sshd 10.0.0.1", ["denied"], ("hosts.allow", 1)),
    (41, A, "sshd: ALL: allow\n", "sshd 10.0.0.1", ["granted"], ("hosts.deny", 1)),
    (42, "sshd: ALL: allow: spawn echo hi\n", A, "sshd 10.0.0.1", ["denied"], ("hosts.allow", 1)),
    (43, "sshd: ALL:\n", A, "sshd 10.0.0.1", ["denied"], ("hosts.allow", 1)),
    (44, "sshd: ALL: bogus\n", A, "sshd 10.0.0.1", ["denied"], ("hosts.allow", 1)),
    (45, "sshd: ALL: twist /bin/echo hi\n", A, "sshd 10.0.0.1", ["delegated"], ("hosts.allow", 1)),
    (46, "sshd: ALL: aclexec /bin/false\n", A, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (48, "sshd: \\\n10.0.0.1\n", DENY_ALL, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 2)),
    (49, "# comment \\\nsshd: 10.0.0.1\n", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (50, " # indented\nsshd: 10.0.0.1\n", DENY_ALL, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 2)),
    (51, "sshd: 10.0.0.2 # comment ALL\n", DENY_ALL, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (52, "sshd: 10.0.0.1", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (53, "sshd: 10.0.0.9\n", "sshd: 10.0.0.9", "sshd 10.0.0.1", ["denied"], None),
    (54, LONG_2046, DENY_ALL, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (55, LONG_2047, DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (56, A, "#" + "y" * 3000 + "\nsshd: 10.0.0.9\n", "sshd 10.0.0.1", ["denied"], None),
    (57, A, A, "sshd 10.0.0.1", ["granted"], None),
    (58, "@SELFLINK", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (59, "sshd: 10.0.0.9\n", "@SELFLINK", "sshd 10.0.0.1", ["denied"], None),
    (62, "sshd: /D/nosuch\n", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (63, "sshd: 10.0.0.1\r\n", "sshd: ALL\r\n", "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (64, "sshd: .example.com\n", DENY_ALL, "sshd good", ["granted"], ("hosts.allow", 1)),
    (65, "sshd: good.example.com.\n", DENY_ALL, "sshd good.example.com", ["denied"], ("hosts.deny", 1)),
    (66, "sshd: good.\n", DENY_ALL, "sshd good.example.com", ["granted"], ("hosts.allow", 1)),
    (67, "sshd: PARANOID\n", DENY_ALL, "sshd z.example.com", ["granted"], ("hosts.allow", 1)),
    (68, "sshd: LOCAL\n", DENY_ALL, "sshd nodots", ["granted"], ("hosts.allow", 1)),
    (69, "sshd: KNOWN\n", DENY_ALL, "sshd multi.example.com", ["granted", "granted"], ("hosts.allow", 1)),
    (70, A, "sshd: ALL EXCEPT\n", "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
    (71, "sshd: \\\r\n10.0.0.1\n", DENY_ALL, "sshd 10.0.0.1", ["denied"], ("hosts.deny", 1)),
]

# cases that need extra files: (id, files, args, expected, matched)
FILE_CASES = [
    (27, {"hosts.allow": "ALL: /D/v6list\n", "hosts.deny": "ALL: ALL\n", "v6list": "2001:db8::5\n"},
     "sshd 2001:db8::5", ["granted"], ("hosts.allow", 1)),
    (60, {"hosts.allow": "sshd: /D/list\n", "hosts.deny": DENY_ALL, "list": "10.0.0.5\n# comment 10.0.0.1\n"},
     "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
    (61, {"hosts.allow": "sshd: /D/outer\n", "hosts.deny": DENY_ALL, "outer": "/D/inner\n",
          "inner": "10.0.0.0/8\n"}, "sshd 10.0.0.1", ["granted"], ("hosts.allow", 1)),
]


def _files(allow, deny):
    files = {}
    for name, text in (("hosts.allow", allow), ("hosts.deny", deny)):
        if text == "@SELFLINK":
            files[name] = None
        elif text is not None:
            files[name] = text
    return files


def _all_cases():
    out = [(n, _files(allow, deny), args, want, matched) for n, allow, deny, args, want, matched in CASES]
    return out + FILE_CASES


ALL = _all_cases()


@pytest.fixture(scope="module")
def results():
    cases = [{"files": files, "args": args.split()} for _, files, args, _, _ in ALL]
    return dict(zip([c[0] for c in ALL], run_cases(cases), strict=True))


@pytest.mark.parametrize("case", ALL, ids=[f"A{c[0]}" for c in ALL])
def test_edge_case(case, results):
    number, _, _, want, matched = case
    result = results[number]
    assert verdicts(result["reference"]["stdout"]) == want, "the reference no longer gives the spec's verdict"
    assert verdicts(result["ours"]["stdout"]) == want
    assert differences(result) == []
    trace = [line for line in result["ours"]["stderr"].splitlines() if line.endswith(": matched")]
    if matched is not None:
        assert f"{matched[0]}, line {matched[1]}: matched" in trace
