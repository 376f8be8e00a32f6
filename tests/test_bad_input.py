"""Bad input: huge lines, NUL bytes, invalid UTF-8, directories, unreadable files, deep EXCEPT nesting, binary
junk, a /file list that names itself. Each gives a diagnostic with file and line where the reference has one,
the reference's verdict (checked against Debian's tcpdmatch), and never a traceback or a hang.
"""

from __future__ import annotations

import random

import pytest
from compare import differences, verdicts
from sandbox import run_cases

DENY_ALL = "sshd: ALL\n"
DEEP_EXCEPT = "sshd: " + "ALL EXCEPT " * 180 + "10.0.0.1\n"

CASES = {
    "100KB line in hosts.allow": ({"hosts.allow": "sshd: " + "x" * 100_000 + " 10.0.0.1\nsshd: 10.0.0.1\n",
                                   "hosts.deny": DENY_ALL}, "sshd 10.0.0.1", ["denied"]),
    "100KB comment in hosts.deny": ({"hosts.deny": "#" + "y" * 100_000 + "\nsshd: 10.0.0.9\n"},
                                    "sshd 10.0.0.1", ["denied"]),
    "NUL glues the next line on": ({"hosts.allow": "sshd: 10.0.0.3\0junk\n, 10.0.0.2\n", "hosts.deny": DENY_ALL},
                                   "sshd 10.0.0.2", ["granted"]),
    "NUL hides a rule": ({"hosts.allow": "sshd: 10.0.0.1\0junk\nsshd: 10.0.0.2\n", "hosts.deny": DENY_ALL},
                         "sshd 10.0.0.2", ["denied"]),
    "NUL only line": ({"hosts.allow": "\0\nsshd: 10.0.0.2\n", "hosts.deny": DENY_ALL}, "sshd 10.0.0.2", ["granted"]),
    "NUL in a /file list": ({"hosts.allow": "sshd: /D/list\n", "list": "10.0.0.9\0 10.0.0.1\n10.0.0.2\0x\n",
                             "hosts.deny": DENY_ALL}, "sshd 10.0.0.2", ["granted"]),
    "invalid UTF-8 in a daemon name": ({"hosts.allow": "sshd\xff: 10.0.0.1\n", "hosts.deny": DENY_ALL},
                                       "sshd\xff 10.0.0.1", ["granted"]),
    "invalid UTF-8 in a client list": ({"hosts.allow": "sshd: \xc3\x28 10.0.0.1\n", "hosts.deny": DENY_ALL},
                                       "sshd 10.0.0.1", ["granted"]),
    "invalid UTF-8 user": ({"hosts.allow": "sshd: r\xe9*@ALL\n", "hosts.deny": DENY_ALL},
                           "sshd r\xe9my@10.0.0.1", ["denied"]),
    "hosts.allow is a directory": ({"hosts.allow": "\0DIR", "hosts.deny": DENY_ALL}, "sshd 10.0.0.1", ["denied"]),
    "hosts.deny is a directory": ({"hosts.deny": "\0DIR"}, "sshd 10.0.0.1", ["granted"]),
    "deeply nested EXCEPT, matching": ({"hosts.deny": DEEP_EXCEPT}, "sshd 10.0.0.1", ["denied"]),
    "deeply nested EXCEPT, other": ({"hosts.deny": DEEP_EXCEPT}, "sshd 10.0.0.2", ["granted"]),
    "EXCEPT odd depth": ({"hosts.deny": "sshd: " + "ALL EXCEPT " * 181 + "10.0.0.1\n"}, "sshd 10.0.0.1", ["granted"]),
}

UNREADABLE = {
    "unreadable hosts.allow": ({"hosts.allow": "sshd: 10.0.0.1\n", "hosts.deny": DENY_ALL}, {"hosts.allow": 0},
                               "sshd 10.0.0.1", ["denied"]),
    "unreadable hosts.deny": ({"hosts.deny": "sshd: 10.0.0.9\n"}, {"hosts.deny": 0}, "sshd 10.0.0.1", ["denied"]),
    "unreadable /file list": ({"hosts.allow": "sshd: /D/list\n", "list": "10.0.0.1\n", "hosts.deny": DENY_ALL},
                              {"list": 0}, "sshd 10.0.0.1", ["denied"]),
}


def junk(seed: int, size: int) -> str:
    rng = random.Random(seed)
    alphabet = bytes(range(256)) + b"::,,  \n\n\n[]@/.ALLEXCEPT10.0.0.1"
    return bytes(rng.choice(alphabet) for _ in range(size)).decode("latin-1")


JUNK = {f"binary junk {seed}": ({"hosts.allow": junk(seed, 3000), "hosts.deny": junk(seed + 1000, 3000)},
                                "sshd 10.0.0.1") for seed in range(12)}


@pytest.fixture(scope="module")
def results():
    names, cases = [], []
    for name, (files, args, _) in CASES.items():
        names.append(name)
        cases.append({"files": files, "args": args.split(" ")})
    for name, (files, modes, args, _) in UNREADABLE.items():
        names.append(name)
        cases.append({"files": files, "modes": modes, "args": args.split(" "), "user": "nobody"})
    for name, (files, args) in JUNK.items():
        names.append(name)
        cases.append({"files": files, "args": args.split(" ")})
    return dict(zip(names, run_cases(cases), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_matches_reference(name, results):
    want = CASES[name][2]
    result = results[name]
    assert verdicts(result["reference"]["stdout"]) == want
    assert differences(result) == []
    assert "Traceback" not in result["ours"]["stderr"]


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_files_match_reference(name, results):
    want = UNREADABLE[name][3]
    result = results[name]
    assert verdicts(result["reference"]["stdout"]) == want
    assert differences(result) == []
    assert "Permission denied" in result["ours"]["stderr"]


@pytest.mark.parametrize("name", list(JUNK))
def test_binary_junk_matches_reference(name, results):
    result = results[name]
    assert result["reference"]["rc"] == 0
    assert differences(result) == []
    assert "Traceback" not in result["ours"]["stderr"]


def test_long_line_diagnostic_names_file_and_line(results):
    stderr = results["100KB line in hosts.allow"]["ours"]["stderr"]
    assert "hosts.allow, line 0: warning: missing newline or line too long" in stderr
    assert "hosts.allow, line 0: warning: all the subsequent rules will be ignored" in stderr


def test_directory_table_gets_a_warning_the_reference_does_not_give(results):
    result = results["hosts.allow is a directory"]
    assert "tcpdmatch: warning: hosts.allow: is a directory, read as an empty table" in result["ours"]["stderr"]
    assert not any("directory" in entry["text"] for entry in result["reference"]["log"])


def test_file_list_naming_itself_denies_where_the_reference_crashes():
    files = {"hosts.allow": "sshd: /D/self\n", "self": "/D/self 10.0.0.9\n"}
    (result,) = run_cases([{"files": files, "args": ["sshd", "10.0.0.1"]}])
    assert result["reference"]["rc"] < 0  # killed by a signal (stack overflow)
    assert result["ours"]["rc"] == 0
    assert verdicts(result["ours"]["stdout"]) == ["denied"]
    assert "/self: /file lists nested deeper than 32 (a loop?)" in result["ours"]["stderr"]
    assert "hosts.allow, line 1: error:" in result["ours"]["stderr"]
