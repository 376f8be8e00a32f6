"""tcpdchk against Debian's: random rule files (the differential generator) and targeted cases with
`-d -v -a`, stdout and every diagnostic compared; then the checks the reference lacks, --no-dns, --json and
the exit status.
"""

from __future__ import annotations

import json

import pytest
from compare import differences
from generator import generate
from sandbox import run_cases
from test_real_world_files import fixture
from test_tcpdmatch_cli import FILES as INETD_FILES
from test_tcpdmatch_cli import MODES as INETD_MODES

CHK = {"program": "tcpdchk", "raw_args": True}


def case(files: dict, *args: str, **extra) -> dict:
    return {"files": files, "args": list(args), **CHK, **extra}


def test_random_rule_files_agree_with_reference():
    cases = [case(c["files"], "-d", "-v", "-a") for c in generate(303, 600)]
    failures = []
    for index, result in enumerate(run_cases(cases, case_timeout=10)):
        problems = differences(result, program="tcpdchk")
        if problems:
            files = {k: v for k, v in cases[index]["files"].items() if k.startswith("hosts")}
            failures.append(f"case {index}: {json.dumps(files)}\n" + "\n".join(problems))
    assert not failures, "\n\n".join(failures[:4])


TARGETED = {
    "inetd.conf": case({**INETD_FILES, "hosts.allow": "in.fingerd, in.ftpd, in.telnetd, rpc.rexd, in.talkd, "
                        "portmap, rpcbind, nosuchd, 22, ssh*: ALL\n"}, "-d", "-v", "-i", "/D/inetd.conf",
                       modes=INETD_MODES),
    "file list quirk": case({"hosts.allow": "sshd: /D/list nosuch.example.com\nsshd: /D/empty nosuch.example.com\n"
                             "sshd: /D nosuch.example.com\n", "list": "nope.example.com 10.0.0.1\n", "empty": ""},
                            "-d"),
    "netgroups and users": case({"hosts.allow": "sshd: @trusted, @nosuch, @users, KNOWN@@trusted, r*t@ALL, "
                                 "PARANOID@ALL, LOCAL@x, .u@ALL, u.@ALL, /u@ALL\n"}, "-d", "-v"),
    "crlf and junk": case({"hosts.allow": "sshd: ALL\r\nsshd 10.0.0.1\r\n\x00\n" + "x" * 3000 + "\nsshd: ALL",
                           "hosts.deny": "ALL: ALL: bogus\nALL: ALL: twist echo x\nALL: ALL: banners /D/b\n",
                           "b/daemon_name": "hi %a %h\n"}, "-d", "-v", "-a"),
    "fixtures": case({"hosts.allow": fixture("sshguard.hosts.allow"),
                      "hosts.deny": fixture("fail2ban.hosts.deny") + fixture("wazuh.hosts.deny")}, "-d", "-v"),
    "usage": case({}, "-x"),
    "operand": case({}, "-d", "extra"),
    "missing -i": case({}, "-d", "-i", "/D/nosuch"),
}


@pytest.fixture(scope="module")
def targeted():
    return dict(zip(TARGETED, run_cases(list(TARGETED.values())), strict=True))


@pytest.mark.parametrize("name", [n for n in TARGETED if n not in ("usage", "operand")])
def test_targeted_cases_agree(name, targeted):
    assert differences(targeted[name], program="tcpdchk") == []


@pytest.mark.parametrize("name", ["usage", "operand"])
def test_usage(name, targeted):
    ref, ours = targeted[name]["reference"], targeted[name]["ours"]
    assert (ref["rc"], ours["rc"]) == (1, 2)
    assert ref["stderr"].replace("/usr/sbin/tcpdchk", "tcpdchk") == ours["stderr"]


def test_checks_the_reference_lacks(targeted):
    stderr = targeted["fixtures"]["ours"]["stderr"]
    assert ("hosts.deny, line 25: error: 2001:db8::77: IPv6 address without [brackets]: tcpd reads the client "
            '"2001" and takes the rest as options, so this address never matches; write [2001:db8::77]') in stderr
    assert targeted["fixtures"]["ours"]["rc"] == 1  # an error was found
    assert "hosts.allow, line 3: warning: client list is empty or ends in EXCEPT" in stderr  # sshguard's
    junk = targeted["crlf and junk"]["ours"]["stderr"]
    assert "hosts.allow, line 3: error: tcpd stops reading hosts.allow here: no rule from here on grants anything" \
        in junk
    assert "hosts.deny, line 2: warning: never used: hosts.deny, line 1 matches every client of ALL first" in junk
    assert targeted["inetd.conf"]["ours"]["rc"] == 0


def test_duplicates_shadowing_and_name_notes():
    files = {"hosts.allow": "sshd: 10.0.0.1\nsshd: 10.0.0.1\nsshd: .example.com, LOCAL\nin.ftpd: ALL\n"
                            "in.ftpd: 10.0.0.2\n", "hosts.deny": "in.ftpd: ALL\nin.ftpd: 10.0.0.3\n"}
    (result,) = run_cases([case(files, "-d", "--no-dns")], reference=False)
    stderr = result["ours"]["stderr"]
    assert "hosts.allow, line 2: warning: duplicate of hosts.allow, line 1: this rule is never used" in stderr
    assert ("hosts.allow, line 3: note: .example.com, LOCAL: tcpd looks up the client's host name (DNS) for every "
            "connection this rule sees") in stderr
    assert "hosts.allow, line 5: warning: never used: hosts.allow, line 4 matches every client of in.ftpd first" \
        in stderr
    assert "hosts.deny, line 1: warning: duplicate of hosts.allow, line 4: this rule is never used" in stderr
    assert "hosts.deny, line 2: warning: never used: hosts.allow, line 4" in stderr
    assert result["ours"]["rc"] == 0


def test_no_dns_resolves_nothing_and_json_is_machine_readable():
    files = {"hosts.allow": "sshd: nosuch.example.com 10.0.0.1 good\nsshd: ALL: bogus\n"}
    plain, as_json = run_cases([case(files, "-d", "--no-dns"), case(files, "-d", "--json")], reference=False)
    assert "host not found" not in plain["ours"]["stderr"] and "lookup failed" not in plain["ours"]["stderr"]
    assert 'hosts.allow, line 2: error: bad option name: "bogus"' in plain["ours"]["stderr"]
    assert plain["ours"]["rc"] == as_json["ours"]["rc"] == 1
    document = json.loads(as_json["ours"]["stdout"])
    assert as_json["ours"]["stderr"] == ""
    assert {"file": "hosts.allow", "line": 1, "level": "warning", "message": "nosuch.example.com: host not found"} \
        in document["findings"]
    assert document["rules"][1] == {"file": "hosts.allow", "line": 2, "daemons": ["sshd"], "clients": ["ALL"],
                                    "access": "denied"}


XINETD = {
    "xinetd.conf": "defaults\n{\n\tinstances = 60\n}\nincludedir /D/xinetd.d\n",
    "xinetd.d/finger": "service finger\n{\n\tsocket_type = stream\n\tserver = /usr/sbin/tcpd\n"
                       "\tserver_args = /usr/sbin/in.fingerd -w\n}\n",
    "xinetd.d/telnet": "service telnet\n{\n\tserver = /D/bin/in.telnetd\n}\n",
    "xinetd.d/ftp": "service ftp\n{\n\tflags = REUSE NOLIBWRAP\n\tserver = /D/bin/ftpd\n}\n",
    "xinetd.d/off": "service off\n{\n\tdisable = yes\n\tserver = /D/bin/offd\n}\n",
    "xinetd.d/ignored.rpmsave": "service ignored\n{\n\tserver = /D/bin/x\n}\n",
    "bin/in.telnetd": "#!/bin/sh\n", "bin/ftpd": "#!/bin/sh\n",
    "hosts.allow": "in.fingerd, telnet, ftp, off, ignored: ALL\n",
}


def test_xinetd_configuration():
    """Beyond the reference (it knows inetd.conf only): xinetd.conf with includedir, tcpd as server,
    xinetd's own libwrap check (named after the service) and NOLIBWRAP."""
    chk, match = run_cases([case(XINETD, "-d", "-v", "-i", "/D/xinetd.conf",
                                 modes={"bin/in.telnetd": 0o755, "bin/ftpd": 0o755}),
                            {"files": XINETD, "args": ["-i", "/D/xinetd.conf", "ftp", "10.0.0.1"],
                             "modes": {"bin/in.telnetd": 0o755, "bin/ftpd": 0o755}}], reference=False)
    out, err = chk["ours"]["stdout"], chk["ours"]["stderr"]
    assert out.startswith("Using network configuration file: /tmp/")
    assert out.splitlines()[0].endswith("/xinetd.conf")
    assert "hosts.allow, line 1: warning: ftp: service possibly not wrapped" in err
    assert "hosts.allow, line 1: warning: off: no such process name in " in err
    assert "hosts.allow, line 1: warning: ignored: no such process name in " in err
    assert "in.fingerd:" not in err and "telnet:" not in err
    assert "tcpdmatch: warning: ftp: service possibly not wrapped" in match["ours"]["stderr"]


def test_option_lines_only_with_v():
    files = {"hosts.allow": "sshd: ALL: spawn echo %a : allow\n"}
    quiet, verbose = run_cases([case(files, "-d"), case(files, "-d", "-v")])
    assert "option:" not in quiet["ours"]["stderr"]
    assert "hosts.allow, line 1: option: spawn echo client_addr" in verbose["ours"]["stderr"]
    for result in (quiet, verbose):
        assert differences(result, program="tcpdchk") == []
