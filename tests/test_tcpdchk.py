"""tcpdchk against Debian's: random rule files (the differential generator) and targeted cases with
`-d -v -a`, stdout and every diagnostic compared; then the checks the reference lacks, --no-dns, --json and
the exit status.

The comparisons run with a name server that works (`NameServer` below, on loopback, NXDOMAIN for every
question): where DNS fails, ours says so once and stops asking, while Debian's goes on line by line.
"""

from __future__ import annotations

import io
import json
import random
import socket
import subprocess
import sys
import threading

import dns.exception
import dns.message
import dns.rcode
import pytest
from compare import differences, without_extras
from generator import generate
from sandbox import our_diagnostics, reference_diagnostics, run_cases
from test_real_world_files import fixture
from test_tcpdmatch_cli import FILES as INETD_FILES
from test_tcpdmatch_cli import MODES as INETD_MODES

CHK = {"program": "tcpdchk", "raw_args": True}


class NameServer:
    """A name server on a free loopback address (port 53, for glibc): NXDOMAIN for every question, SERVFAIL
    under servfail.test, no answer at all under silent.test; `questions` keeps every name asked, in order.
    Nothing it does leaves the machine; it stops with the test module."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for last in random.Random().sample(range(160, 250), 90):  # another run may hold one of them
            try:
                self.sock.bind((f"127.0.0.{last}", 53))
                break
            except OSError:
                continue
        else:
            self.sock.close()
            raise RuntimeError("no free loopback address for the test name server")
        self.address = self.sock.getsockname()[0]
        self.sock.settimeout(0.2)  # so that stop() is seen
        self.questions: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
                reply = self.answer(data)
                if reply is not None:
                    self.sock.sendto(reply, peer)
            except (OSError, dns.exception.DNSException):
                continue

    def answer(self, data: bytes) -> bytes | None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text().lower() if query.question else ""
        self.questions.append(name)
        if name.endswith("silent.test."):
            return None
        reply = dns.message.make_response(query)
        reply.set_rcode(dns.rcode.SERVFAIL if name.endswith("servfail.test.") else dns.rcode.NXDOMAIN)
        return reply.to_wire()

    def etc(self) -> dict:
        return {"resolv.conf": f"nameserver {self.address}\noptions timeout:1 attempts:1\n"}

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def name_server():
    server = NameServer()
    yield server
    server.stop()


def case(files: dict, *args: str, **extra) -> dict:
    return {"files": files, "args": list(args), **CHK, **extra}


def test_random_rule_files_agree_with_reference(name_server):
    cases = [case(c["files"], "-d", "-v", "-a") for c in generate(303, 600)]
    failures = []
    for index, result in enumerate(run_cases(cases, etc=name_server.etc(), case_timeout=10)):
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
def targeted(name_server):
    return dict(zip(TARGETED, run_cases(list(TARGETED.values()), etc=name_server.etc()), strict=True))


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
    # the NUL on line 3 hides its newline and glues the 3000 x's on: tcpd stops there (Debian's warning says
    # line 2), said once, not again for the lines after it
    assert f"hosts.allow, line 3: {STOPS_ALLOW}" in junk
    assert junk.count("error: tcpd stops reading") == 1
    assert f"hosts.allow, line 2: {SKIPPED_ALLOW}" in junk  # the rule without ":" before it
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


def test_no_dns_resolves_nothing_and_json_is_machine_readable(name_server):
    files = {"hosts.allow": "sshd: nosuch.example.com 10.0.0.1 good\nsshd: ALL: bogus\n"}
    plain, as_json = run_cases([case(files, "-d", "--no-dns"), case(files, "-d", "--json")], etc=name_server.etc(),
                               reference=False)
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


def test_option_lines_only_with_v(name_server):
    files = {"hosts.allow": "sshd: ALL: spawn echo %a : allow\n"}
    quiet, verbose = run_cases([case(files, "-d"), case(files, "-d", "-v")], etc=name_server.etc())
    assert "option:" not in quiet["ours"]["stderr"]
    assert "hosts.allow, line 1: option: spawn echo client_addr" in verbose["ours"]["stderr"]
    for result in (quiet, verbose):
        assert differences(result, program="tcpdchk") == []


def unused_loopback() -> str:
    """A loopback address where nothing listens on port 53: DNS sent there is refused at once. (127.0.2.x:
    NameServer and tests/dns_fixtures.py's servers live in 127.0.0.x.)"""
    for last in random.Random().sample(range(1, 255), 254):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((f"127.0.2.{last}", 53))
            except OSError:
                continue
        return f"127.0.2.{last}"
    raise RuntimeError("no free loopback address")


SKIPPED_ALLOW = 'error: no ":" separator: tcpd skips this line, so this rule never grants anything'
SKIPPED_DENY = SKIPPED_ALLOW.replace("grants", "denies")
STOPS_ALLOW = "error: tcpd stops reading hosts.allow here: no rule from here on grants anything"
STOPS_DENY = "error: tcpd stops reading hosts.deny here: every client that hosts.allow does not grant is denied"


def test_a_line_tcpd_skips_is_an_error(name_server):
    """Issue 12, item 8: a hosts.allow whose only line was `in.fingerd  127.0.0.1` got a warning and exit 0,
    so `tcpdchk -d && install` deployed it and tcpd denied the service. What tcpd skips is an error: a line
    without ":", the rest of a table after a line without newline or over 2046 characters, a table it cannot
    open. Debian's words stay as they are; each error names the file and line (or the table it cannot open),
    and tests/compare.py knows each by its whole text."""
    tables = [{"hosts.allow": "in.fingerd  127.0.0.1\n"},
              {"hosts.deny": "ALL: 10.0.0.1\nALL 10.0.0.2\n"},
              {"hosts.deny": "ALL: 10.0.0.1"},
              {"hosts.allow": "sshd: " + "x" * 3000 + "\n"},  # its rest is read as a line without ":" too
              {"hosts.allow": None, "hosts.deny": "ALL: 10.0.0.1\n"},  # a symbolic link to itself
              {"hosts.deny": None}]
    only, deny, unterminated, overlong, unreadable, unreadable_deny = run_cases([case(t, "-d") for t in tables],
                                                                                etc=name_server.etc())
    assert only["ours"]["stderr"] == ('hosts.allow, line 1: warning: missing ":" separator\n'
                                      f"hosts.allow, line 1: {SKIPPED_ALLOW}\n")
    assert f"hosts.deny, line 2: {SKIPPED_DENY}\n" in deny["ours"]["stderr"]
    assert f"hosts.deny, line 1: {STOPS_DENY}" in unterminated["ours"]["stderr"]
    assert 'hosts.allow, line 1: warning: missing ":" separator' in overlong["ours"]["stderr"]
    assert overlong["ours"]["stderr"].count("error:") == 1  # tcpd never reads the rest: said once, at line 1
    assert unreadable["ours"]["stderr"].startswith(
        "tcpdchk: warning: cannot open hosts.allow: Too many levels of symbolic links\n"
        "tcpdchk: error: tcpd ignores hosts.allow when it cannot open it: no rule in it grants anything\n")
    assert unreadable_deny["ours"]["stderr"] == (
        "tcpdchk: warning: cannot open hosts.deny: Too many levels of symbolic links\n"
        "tcpdchk: error: tcpd denies every client that hosts.allow does not grant when it cannot open hosts.deny\n")
    assert {"pri": 11, "ident": "tcpdchk", "text": "warning: cannot open hosts.allow: Too many levels of symbolic "
            "links"} in unreadable["reference"]["log"]
    for result in (only, deny, unterminated, overlong, unreadable, unreadable_deny):
        assert result["ours"]["rc"] == 1
        assert differences(result, program="tcpdchk") == []  # Debian's lines, in order; only errors added


def test_error_lines_name_the_line_where_tcpd_stops(name_server):
    """Issue 13, item 12: for a line without newline or over 2046 characters Debian's warning names the line
    before it (it counts the newlines read so far: `line 0` in a one-line file). That warning stays as it is;
    our error names the line where tcpd's buffer filled or the file ended, continuation lines counted."""
    continued = "sshd: ALL\nin.ftpd: LOCAL \\\nKNOWN \\\n" + "x" * 3000 + "\n"  # overflows on line 4
    tables = [{"hosts.allow": "sshd: ALL\nin.ftpd: ALL"}, {"hosts.deny": "ALL: ALL"}, {"hosts.allow": continued}]
    last, one_line, overflow = run_cases([case(t, "-d") for t in tables], etc=name_server.etc())
    assert last["ours"]["stderr"] == ("hosts.allow, line 1: warning: missing newline or line too long\n"
                                      f"hosts.allow, line 2: {STOPS_ALLOW}\n")
    assert one_line["ours"]["stderr"] == ("hosts.deny, line 0: warning: missing newline or line too long\n"
                                          f"hosts.deny, line 1: {STOPS_DENY}\n")
    assert overflow["ours"]["stderr"] == ("hosts.allow, line 3: warning: missing newline or line too long\n"
                                          f"hosts.allow, line 4: {STOPS_ALLOW}\n"
                                          'hosts.allow, line 4: warning: missing ":" separator\n')
    for result in (last, one_line, overflow):
        assert result["ours"]["rc"] == 1
        assert differences(result, program="tcpdchk") == []


def test_unreachable_dns_is_said_once_and_the_real_findings_stay():
    """Issue 12, item 9: with DNS unreachable, a 5,004-line deny list gave two stderr lines per address
    (`DNS lookup failed`, `->name lookup failed`), 10,032 in all, and the real findings drowned. Now one
    line says from where name checks were skipped and why; DNS is not asked again; findings that need no
    DNS (/etc/hosts, syntax, options) stay, in Debian's words, while Debian's repeats the failure."""
    addresses = [f"ALL: 10.{i // 250}.{i % 250}.{1 + i % 200}" for i in range(5000)]
    deny = "\n".join([*addresses, "sshd: x.example.com", "in.ftpd 10.1.1.1", "sshd: 10.0.0.0/33",
                      "ALL: ALL: bogus"]) + "\n"
    server = unused_loopback()
    (result,) = run_cases([case({"hosts.deny": deny}, "-d")], case_timeout=300,
                          etc={"resolv.conf": f"nameserver {server}\noptions timeout:1 attempts:1\n"})
    lines = result["ours"]["stderr"].splitlines()
    assert [line for line in lines if "DNS" in line] == [
        "hosts.deny, line 5001: note: x.example.com: tcpd looks up the client's host name (DNS) for every "
        "connection this rule sees",
        f"tcpdchk: warning: name checks skipped from hosts.deny, line 1 on (5000 names and addresses): DNS failed (PTR 1.0.0.10.in-addr.arpa: "
        f"{server}: Connection refused)"]
    for finding in ("hosts.deny, line 5001: warning: x.example.com: hostname alias",  # from /etc/hosts
                    'hosts.deny, line 5002: warning: missing ":" separator',
                    "hosts.deny, line 5003: warning: 10.0.0.0/33: bad net/mask pattern",
                    'hosts.deny, line 5004: error: bad option name: "bogus"'):
        assert finding in lines
    assert len(lines) < 20 and result["ours"]["rc"] == 1
    ours = [e for e in without_extras(our_diagnostics(result["ours"])) if e[0] == "log"]
    reference = iter(reference_diagnostics(result["reference"]))
    assert all(entry in reference for entry in ours)  # Debian's words, in Debian's order
    assert len(result["reference"]["log"]) > 5000  # Debian's says it per address


@pytest.mark.parametrize("failing", ["a.servfail.test", "a.silent.test"])
def test_dns_failure_ends_name_checks_but_nxdomain_is_an_answer(name_server, failing):
    """A SERVFAIL or a silent server stops DNS for the rest of the run (nothing more is asked); NXDOMAIN is an
    answer: `host not found` and `->name lookup failed` from it are real findings and stay."""
    allow = (f"sshd: nosuch.example.org 10.0.0.77\nsshd: {failing}\nsshd: 10.0.0.78 nosuch2.example.org "
             "x.example.com\n")
    asked_before = len(name_server.questions)
    (result,) = run_cases([case({"hosts.allow": allow}, "-d")], etc=name_server.etc(), reference=False)
    asked = name_server.questions[asked_before:]
    lines = result["ours"]["stderr"].splitlines()
    reason = "answered SERVFAIL" if "servfail" in failing else "did not answer"
    assert [line for line in lines if "warning" in line] == [
        "hosts.allow, line 1: warning: nosuch.example.org: host not found",
        "hosts.allow, line 1: warning: host address 10.0.0.77->name lookup failed",
        "hosts.allow, line 3: warning: x.example.com: hostname alias",
        "hosts.allow, line 3: warning: (official name: y.example.com)",
        "hosts.allow, line 3: warning: host name/name mismatch: x.example.com != y.example.com",
        f"tcpdchk: warning: name checks skipped from hosts.allow, line 2 on (3 names and addresses): DNS failed (AAAA {failing}: "
        f"{name_server.address} {reason})"]
    assert asked[-1] == failing + "." and "78.0.0.10.in-addr.arpa." not in asked
    assert result["ours"]["rc"] == 0


def test_scoped_ipv6_patterns_agree_with_reference(name_server):
    """Issue 13: `[fe80::1%lo]` and `[fe80::%lo]/10` are addresses to Debian's tcpdchk, read as getaddrinfo
    reads them (an interface only for a link-local address, or a number below 2**32), so it says nothing and
    asks no name server; ours asked DNS for `[fe80::1%lo]` and called the network a bad net/mask. Scopes it
    rejects stay findings, worded as Debian's: a name not found, or a bad net/mask. The same in a /file list."""
    good = "[fe80::1%lo] [fe80::%lo]/10 [fe80::1%1] [::1%1] [2001:db8::%1]/32 [fe80::%0]/64"
    bad = "[::1%lo] [fe80::1%nosuch] [fe80::1%] [fe80::%nosuch]/10 [fe80::%lo]/129 [2001:db8::%lo]/32"
    files = {"hosts.allow": f"sshd: {good}\nsshd: /D/list\n", "hosts.deny": f"sshd: {bad}\n",
             "list": good + "\n"}
    asked_before = len(name_server.questions)
    (result,) = run_cases([case(files, "-d", "-v")], etc=name_server.etc())
    assert differences(result, program="tcpdchk") == []
    assert "hosts.allow" not in result["ours"]["stderr"] and "list" not in result["ours"]["stderr"]
    asked = name_server.questions[asked_before:]  # both tcpdchks: only the bad ones are names
    assert not any("fe80::1%lo" in q or "fe80::1%1" in q for q in asked)
    assert "[::1%lo]." in asked
    assert "hosts.deny, line 1: warning: [fe80::%lo]/129: bad net/mask pattern" in result["ours"]["stderr"]


def test_unbracketed_scoped_ipv6_is_an_error():
    """`ALL: fe80::1%eth0` (sshd logs a link-local peer so, and a blocker copies it) is read by tcpd as the
    client `fe80` and the options `:1%eth0`, as an unscoped one is: the address is never blocked."""
    files = {"hosts.deny": "ALL: fe80::1%lo\nALL: fe80::2%nosuch\n"}
    (result,) = run_cases([case(files, "-d", "--no-dns")], reference=False)
    stderr = result["ours"]["stderr"]
    for line, address in ((1, "fe80::1%lo"), (2, "fe80::2%nosuch")):
        assert (f"hosts.deny, line {line}: error: {address}: IPv6 address without [brackets]: tcpd reads the "
                f'client "fe80" and takes the rest as options, so this address never matches; write [{address}]'
                ) in stderr


OVERFLOW = ("error: %-expansion over tcpd's buffer with tcpdchk's placeholder values: tcpd refuses, without a "
            "verdict, every connection whose expansion overflows; rules after this one were not checked")


def test_an_expansion_too_long_ends_the_check_as_in_debians(name_server):
    """Fuzz finding tcpdchk-expansion-too-long: `spawn` and 700 `%h` overflow percent_x's buffer with the
    placeholder name client_hostname. Debian's tcpdchk logs the warning and exits there (percent_x sleeps
    5 s, exit 0): its -v listing stops before the rule's access line, and nothing after it is checked (the
    bogus option in hosts.deny is never seen). Ours died with a traceback; now the same warning and stdout,
    then an error, and exit 1."""
    files = {"hosts.allow": "sshd: 10.0.0.5\nALL: ALL: spawn " + "%h" * 700 + "\nin.ftpd: ALL\n",
             "hosts.deny": "ALL: ALL: bogus\n"}
    (result,) = run_cases([case(files, "-d", "-v", "-a")], etc=name_server.etc())
    assert (result["reference"]["rc"], result["ours"]["rc"]) == (0, 1)
    assert differences(result, program="tcpdchk") == []
    assert result["ours"]["stdout"].endswith(">>> Rule hosts.allow line 2:\ndaemons:  ALL\nclients:  ALL\n")
    assert result["ours"]["stderr"] == (
        'hosts.allow, line 1: warning: implicit "allow" at end of rule\n'
        "hosts.allow, line 2: warning: percent_x: expansion too long: client_hostnameclient_hostname...\n"
        f"hosts.allow, line 2: {OVERFLOW}\n")


def test_a_file_list_naming_itself_is_an_error_where_debians_crashes(name_server):
    """Fuzz finding tcpdchk-file-list-names-itself: the checker followed /file lists without bound
    (RecursionError), as Debian's tcpdchk does until SIGSEGV. Like the matcher (MAX_FILE_LIST_DEPTH), it
    stops 32 lists deep, with one error where the nesting got too deep, and checks the rest of the tables.
    Two lines naming the list itself would be 2**32 lists: the first one too deep ends them all."""
    files = {"hosts.allow": "ALL: /D/self\nsshd: 10.0.0.0/33\n", "self": "/D/self\n/D/self\n"}
    (result,) = run_cases([case(files, "-d")], etc=name_server.etc())
    assert result["reference"]["rc"] == -11 and result["reference"]["log"] == []  # SIGSEGV, nothing said
    self_path = result["dir"] + "/self"
    assert result["ours"]["stderr"] == (
        f"{self_path}, line 1: error: {self_path}: /file lists nested deeper than 32 (a loop?): tcpd denies every "
        "client this list is asked about\n"
        "hosts.allow, line 2: warning: 10.0.0.0/33: bad net/mask pattern\n")
    assert result["ours"]["rc"] == 1


# the process's own high-water mark (VmHWM): getrusage's ru_maxrss would start at pytest's, since Linux
# carries it across vfork + exec
MEASURED = """import sys
from pywrap.cli import tcpdchk
rc = tcpdchk.run(["tcpdchk", *sys.argv[1:]], sys.stdout.buffer, sys.stderr.buffer)
sys.stdout.flush()
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
sys.stderr.write(f"peak RSS {int(hwm.split()[1]) // 1024} MiB")
sys.exit(rc)
"""


def measured_tcpdchk(directory, *args: str) -> tuple[int, bytes, int]:
    """Our tcpdchk in a process of its own: exit status, stdout, peak RSS in MiB."""
    proc = subprocess.run([sys.executable, "-c", MEASURED, *args], cwd=directory, capture_output=True, timeout=300)
    return proc.returncode, proc.stdout, int(proc.stderr.decode().rpartition("peak RSS ")[2].split()[0])


def test_json_memory_stays_bounded_however_many_findings(tmp_path):
    """Fuzz finding tcpdchk-json-memory-grows-with-each-finding: --json kept every finding and every rule and
    printed them with the indenting encoder: 300 MiB for 100,000 lines without ":" (1.1 GiB and 11 s for
    400,000; a table may hold 64 MiB). Rules are now written as they are checked; the first 10,000 findings
    of each level are listed, then one note says how many more there are, and `counts` has them all."""
    (tmp_path / "hosts.allow").write_text("x\n" * 100_000)
    (tmp_path / "hosts.deny").write_text("".join(f"ALL: 10.{n >> 8}.{n & 255}.1\n" for n in range(30_000)))
    rc, out, peak = measured_tcpdchk(tmp_path, "-d", "--no-dns", "--json")
    document = json.loads(out)
    assert rc == 1 and peak < 64, peak
    assert document["counts"] == {"error": 100_000, "warning": 100_000, "note": 0}
    findings = document["findings"]
    assert len(findings) == 20_001 and len(document["rules"]) == 30_000
    assert findings[:2] == [
        {"file": "hosts.allow", "line": 1, "level": "warning", "message": 'missing ":" separator'},
        {"file": "hosts.allow", "line": 1, "level": "error", "message": SKIPPED_ALLOW.removeprefix("error: ")}]
    assert findings[-2]["line"] == 10_000
    assert findings[-1] == {"file": None, "line": None, "level": "note", "message":
                            "180000 more findings not listed: only the first 10000 of each level are (counts "
                            "has them all)"}
    assert document["rules"][-1] == {"file": "hosts.deny", "line": 30_000, "daemons": ["ALL"],
                                     "clients": ["10.117.47.1"], "access": "denied"}


def test_json_is_the_only_thing_on_stdout(tmp_path, monkeypatch):
    """A banners file's text went to stdout in the middle of the JSON document (it is checked all the same);
    an over-long expansion ends the check with the document whole."""
    from pywrap.cli import tcpdchk

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "daemon_name").write_text("hello %a\n")
    (tmp_path / "hosts.allow").write_text(f"sshd: ALL: banners {tmp_path}/b\nALL: ALL: spawn {'%h' * 700}\n")
    (tmp_path / "hosts.deny").write_text("ALL: ALL: bogus\n")
    monkeypatch.chdir(tmp_path)
    out, err = io.BytesIO(), io.BytesIO()
    assert tcpdchk.run(["tcpdchk", "-d", "--no-dns", "--json"], out, err) == 1
    document = json.loads(out.getvalue())
    assert err.getvalue() == b""
    assert [r["line"] for r in document["rules"]] == [1]
    assert document["findings"] == [
        {"file": "hosts.allow", "line": 2, "level": "warning",
         "message": "percent_x: expansion too long: client_hostnameclient_hostname..."},
        {"file": "hosts.allow", "line": 2, "level": "error", "message": OVERFLOW.removeprefix("error: ")}]
    assert document["counts"] == {"error": 1, "warning": 1, "note": 0}
