"""Rule files as fail2ban, DenyHosts, sshguard and OSSEC/Wazuh really write them, through both programs.

Each query has the verdict an admin should expect from the reference (checked against Debian's tcpdmatch
itself), and ours must agree with it line for line. Notable: Wazuh writes IPv6 without brackets, which the
reference reads as client "2001" plus junk options, so that address is NOT blocked — by either program.
"""

from __future__ import annotations

import os

import pytest
from compare import differences, verdicts
from sandbox import run_cases

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name: str) -> str:
    with open(os.path.join(HERE, name), encoding="latin-1") as f:
        return f.read()


def fail2ban_after_unban() -> str:
    """fail2ban's actionunban is `sed -i '/^ALL: 198.51.100.23$/d'`: the line disappears, nothing else."""
    return "".join(line for line in fixture("fail2ban.hosts.deny").splitlines(keepends=True)
                   if line != "ALL: 198.51.100.23\n")


SCENARIOS = {
    "fail2ban": {"hosts.deny": fixture("fail2ban.hosts.deny")},
    "fail2ban-unbanned": {"hosts.deny": fail2ban_after_unban()},
    "denyhosts": {"hosts.deny": fixture("denyhosts.hosts.deny")},
    "sshguard": {"hosts.allow": fixture("sshguard.hosts.allow"), "hosts.deny": "ALL: ALL\n"},
    "wazuh": {"hosts.deny": fixture("wazuh.hosts.deny")},
}

QUERIES = [
    ("fail2ban", "sshd 192.0.2.1", "denied"),
    ("fail2ban", "sshd 192.0.2.2", "granted"),
    ("fail2ban", "in.ftpd 203.0.113.77", "denied"),
    ("fail2ban", "sshd 2001:db8::", "denied"),
    ("fail2ban", "sshd 2001:db8:0:0::0", "denied"),
    ("fail2ban", "sshd 2001:db8::1", "granted"),
    ("fail2ban", "sshd 2001:db8:0:1::42", "denied"),
    ("fail2ban", "sshd ::ffff:192.0.2.1", "denied"),
    ("fail2ban", "sshd 198.51.100.23", "denied"),
    ("fail2ban-unbanned", "sshd 198.51.100.23", "granted"),
    ("fail2ban-unbanned", "sshd 192.0.2.1", "denied"),
    ("denyhosts", "sshd 192.0.2.10", "denied"),
    ("denyhosts", "in.ftpd 192.0.2.10", "granted"),
    ("denyhosts", "sshd 198.51.100.200", "denied"),
    ("denyhosts", "sshd 10.0.0.1", "granted"),
    ("sshguard", "sshd 192.0.2.7", "denied"),
    ("sshguard", "sshd 198.51.100.3", "denied"),
    ("sshguard", "sshd 2001:db8::9", "denied"),
    ("sshguard", "sshd 10.1.1.1", "granted"),
    ("sshguard", "sshd 127.0.0.1", "granted"),
    ("sshguard", "sshd 8.8.8.8", "denied"),
    ("wazuh", "sshd 192.0.2.44", "denied"),
    ("wazuh", "sshd 198.51.100.9", "denied"),
    ("wazuh", "sshd 2001:db8::77", "granted"),
    ("wazuh", "sshd 192.0.2.45", "granted"),
]


@pytest.fixture(scope="module")
def results():
    cases = [{"files": SCENARIOS[name], "args": args.split()} for name, args, _ in QUERIES]
    return run_cases(cases)


@pytest.mark.parametrize("index", range(len(QUERIES)), ids=[f"{q[0]}:{q[1]}" for q in QUERIES])
def test_writer_files(index, results):
    _, _, want = QUERIES[index]
    result = results[index]
    assert verdicts(result["reference"]["stdout"]) == [want]
    assert differences(result) == []
