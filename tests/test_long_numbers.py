"""Numbers in rules as the C library reads them (issue 13, item 3), through Debian's tcpdmatch and ours.

Table lines stop at 2,046 bytes, /file lists do not: a `10.0.0.0/111...` of 5,000 digits in a /file list made
our tcpdmatch print a traceback (and tcpd refuse a legitimate client with "internal error"), because Python's
int() refuses more than 4,300 digits. The reference reads these numbers with strtoul, strtol (atoi) and sscanf:
they saturate on overflow and are then narrowed to 32 bits, so `/4294967304` is a /8 and a port pattern
`4294967296` is port 0. Every form is run beside Debian's tcpdmatch.
"""

from __future__ import annotations

import pytest
from compare import differences
from sandbox import run_cases

BIG = "1" * 5000
# prefix lengths and masks: atoi saturates at LONG_MIN / LONG_MAX and keeps the low 32 bits
PREFIXES = ["8", "0" * 1500 + "8", str(2**32 + 8), str(2**31 + 8), str(2**63), str(2**64 + 8), f"-{2**32 - 8}",
            "-" + "9" * 30, "9" * 1500, "8" + "9" * 1500, "24x"]
NETWORKS = ["10.0.0.0", f"10.0.0.{'0' * 1500}", f"10.0.0.{2**64}", f"10.0.0.{2**32}", f"0x{'0' * 1000}a.0.0.0",
            f"012.0.0.{'0' * 1000}"]
MASKS = ["255.0.0.0", f"255.0.0.{'0' * 1500}", f"255.{2**64}.0.0", f"0x{'f' * 30}.0.0.0", f"0{'0' * 1000}377.0.0.0"]
CLIENTS = ["10.0.0.1", "::1", "2001:db8::5", "::ffff:10.0.0.1"]


def table_patterns() -> list[str]:
    forms = [f"10.0.0.0/{p}" for p in PREFIXES] + [f"[::]/{p}" for p in PREFIXES]
    forms += [f"[2001:db8::]/{p}" for p in PREFIXES] + [f"{n}/8" for n in NETWORKS] + [f"10.0.0.0/{m}" for m in MASKS]
    return forms


# in a /file list, where nothing limits their length
FILE_PATTERNS = [f"10.0.0.0/{BIG}", f"[::]/{BIG}", f"[::]/-{BIG}", f"10.0.0.0/-{BIG}", f"10.0.0.{BIG}/8",
                 f"10.0.0.0/255.255.{BIG}.0", f"{BIG}.0.0.0/8", f"1.2.3.{BIG}", BIG, f"10.0.0.0/0{BIG}",
                 f"10.0.0.0/0x{BIG}", f"[::]/{'0' * 5000}64", f"[2001:db8::]/{'0' * 5000}32"]
# daemon patterns that are port numbers (sscanf %u, narrowed): tcpdmatch's server port is 0
PORTS = [str(2**32), str(2**32 + 22), f"-{2**32}", f"+{2**32}", "0" * 2000 + "22", str(2**64), str(2**64 - 2**32),
         "9" * 1500]
# options whose values are sscanf'd numbers
OPTIONS = [f"rfc931 {2**64}", f"rfc931 {2**32 + 3}", f"nice {2**31}", "nice " + "9" * 1500, f"nice -{2**63 + 1}",
           "umask " + "7" * 1500, f"umask 0{'0' * 1000}27", f"linger {2**32 + 5}", "linger -" + "9" * 40]


def cases() -> list[dict]:
    deny = "ALL: ALL\n"
    found = [{"files": {"hosts.allow": f"sshd: {p}\n", "hosts.deny": deny}, "args": ["sshd", c]}
             for p in table_patterns() for c in CLIENTS]
    found += [{"files": {"hosts.allow": "sshd: /D/list\n", "hosts.deny": deny, "list": f"{p}\n"}, "args": ["sshd", c]}
              for p in FILE_PATTERNS for c in CLIENTS]
    found += [{"files": {"hosts.allow": f"{p}: ALL\n", "hosts.deny": deny}, "args": ["sshd", "10.0.0.1"]}
              for p in PORTS]
    found += [{"files": {"hosts.allow": f"sshd: ALL: {o}\n"}, "args": ["sshd", "10.0.0.1"]} for o in OPTIONS]
    return found


@pytest.fixture(scope="module")
def results():
    every = cases()
    return every, run_cases(every)


def test_long_and_overflowing_numbers_agree_with_debian(results):
    every, outcomes = results
    failures = [f"{case['files']}, {case['args']}:\n" + "\n".join(differences(result))
                for case, result in zip(every, outcomes, strict=True) if differences(result)]
    assert [f[:3000] for f in failures] == []


def test_the_five_thousand_digit_prefix_in_a_file_list_is_no_prefix(results):
    """The issue's case: no traceback, and the pattern matches nothing (atoi saturates: not 1 to 32)."""
    every, outcomes = results
    for case, result in zip(every, outcomes, strict=True):
        if case["files"].get("list") == f"10.0.0.0/{BIG}\n" and case["args"][1] == "10.0.0.1":
            assert result["ours"]["stdout"].endswith("access:   denied\n")
            assert result["ours"]["rc"] == 0


def test_a_prefix_past_32_bits_is_read_as_its_low_32_bits(results):
    """`/4294967304` is atoi's 8: Debian matches 10.0.0.1 with it, and so must we."""
    every, outcomes = results
    for case, result in zip(every, outcomes, strict=True):
        if case["files"]["hosts.allow"] == f"sshd: 10.0.0.0/{2**32 + 8}\n" and case["args"][1] == "10.0.0.1":
            assert result["reference"]["stdout"].endswith("access:   granted\n")
            assert result["ours"]["stdout"] == result["reference"]["stdout"]
