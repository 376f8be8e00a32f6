"""tcpd end to end: a real openbsd-inetd runs Debian's tcpd and ours with the same inetd.conf line, the same
rule files and the same probe daemon; clients connect over loopback from 127.0.0.x; syslog comes from a
private /dev/log. What the client saw, what the daemon saw and every syslog line must agree, except where the
README's differences table says we do better (each such case asserts both sides).
"""

from __future__ import annotations

import pwd

import pytest
from tcpd_sandbox import inherited_ignored, install_ours, log_lines, report, run_scenarios, without_our_extras

TCP = "127.0.0.1:{port} stream tcp nowait root {tcpd} showargs a b\n"
SIGNALS = "grep -E '^Sig(Ign|Blk)' /proc/self/status"  # the signal state a command starts with
GIVEN = {"ignore": ["SIGPIPE", "SIGALRM", "SIGUSR2"], "block": ["SIGALRM", "SIGUSR1"]}  # to tcpd, by hand
UDP = "127.0.0.1:{port} dgram udp wait root {tcpd} showargs\n"
LOCAL, OTHER = {"source": "127.0.0.1"}, {"source": "127.0.0.2"}

SCENARIOS = {
    "advanced install": {"hosts.deny": "ALL: 127.0.0.2\n", "conf": TCP, "connections": [LOCAL, OTHER]},
    "absolute path in argv[0]": {"conf": "127.0.0.1:{port} stream tcp nowait root {tcpd} /usr/sbin/showargs x\n",
                                 "hosts.deny": "showargs: 127.0.0.2\n", "connections": [LOCAL, OTHER]},
    "easy install": {"copies": {"/D/showargs": "{tcpd}"}, "hosts.deny": "ALL: 127.0.0.2\n",
                     "conf": "127.0.0.1:{port} stream tcp nowait root {dir}/showargs showargs e\n",
                     "connections": [LOCAL, OTHER]},
    "udp": {"hosts.deny": "ALL: 127.0.0.2\n", "conf": UDP,
            "connections": [{"udp": True, "send": "hello", **LOCAL}, {"udp": True, "send": "hi", **OTHER}]},
    "twist": {"hosts.allow": "showargs: 127.0.0.1: twist echo twisted %a %d; umask; id -u\n", "conf": TCP,
              "connections": [LOCAL]},
    "spawn": {"hosts.allow": "showargs: ALL: spawn echo %a %A %c %d %h %n %s %u >> /D/spawned\n", "conf": TCP,
              "connections": [LOCAL], "read": ["spawned"]},
    "banners": {"hosts.allow": "showargs: ALL: banners /D/banners\n", "conf": TCP, "connections": [LOCAL],
                "files": {"banners/showargs": "hello %a from %d [x]\nunbalanced [ line\nend\n"}},
    "setenv umask nice": {"hosts.allow": "showargs: ALL: setenv FOO  bar baz  : umask 077 : nice 7\n",
                          "conf": TCP, "connections": [LOCAL]},
    "severity": {"hosts.allow": "showargs: 127.0.0.1: severity local0.notice\n",
                 "hosts.deny": "ALL: ALL: severity crit\n", "conf": TCP, "connections": [LOCAL, OTHER]},
    "allow option in hosts.deny": {"hosts.deny": "showargs: ALL: allow\n", "conf": TCP, "connections": [LOCAL]},
    "aclexec falls through": {"hosts.allow": "showargs: ALL: aclexec exit 3\nshowargs: ALL\n",
                              "hosts.deny": "showargs: 127.0.0.1\n", "conf": TCP, "connections": [LOCAL]},
    "aclexec success in hosts.deny": {"hosts.deny": "showargs: ALL: aclexec exit 0\n", "conf": TCP,
                                      "connections": [LOCAL]},
    "aclexec stale flag": {"hosts.allow": "showargs: ALL: aclexec exit 1\n",
                           "hosts.deny": "showargs: ALL: spawn true\n", "conf": TCP, "connections": [LOCAL]},
    "broken rule file": {"hosts.allow": "showargs: ALL: bogus\n", "conf": TCP, "connections": [LOCAL]},
    "hosts.deny too long": {"hosts.deny": "#" + "x" * 3000 + "\n", "conf": TCP, "connections": [LOCAL]},
    "missing daemon": {"conf": "127.0.0.1:{port} stream tcp nowait root {tcpd} nonexistent-daemon-xyz\n",
                       "connections": [LOCAL]},
    "name lookup": {"hosts.allow": "showargs: localhost\n", "hosts.deny": "ALL: ALL\n", "conf": TCP,
                    "connections": [LOCAL, OTHER]},
    "ipv6": {"hosts.allow": "showargs: [::1]\n", "hosts.deny": "ALL: ALL\n",
             "conf": "[::1]:{port} stream tcp6 nowait root {tcpd} showargs\n", "connections": [{"source": "::1"}]},
    "stdin is a pipe": {"direct": "pipe", "argv0": "showargs"},
    "stdin is an AF_UNIX socket": {"direct": "unix", "argv0": "showargs", "hosts.allow": "showargs: KNOWN\n"},
    "daemon name with a slash": {"conf": "127.0.0.1:{port} stream tcp nowait root {tcpd} sub/showargs\n",
                                 "connections": [LOCAL]},
    "ip options": {"conf": TCP, "connections": [{"source": "127.0.0.1", "ip_options": "0107070400000000"}]},
    "exec failure, by hand": {"direct": "unix", "argv0": "nonexistent-daemon-xyz"},
    "port and server patterns": {"hosts.allow": "{port}: 127.0.0.2\nshowargs@127.0.0.1: 127.0.0.1\n",
                                 "hosts.deny": "ALL: ALL\n", "conf": TCP, "connections": [LOCAL, OTHER]},
    # what the daemon (the probe reports it), spawn, aclexec and twist commands start with: Debian's tcpd
    # passes on what inetd (or whoever ran it) gave it; the interpreter ignores SIGPIPE and SIGXFSZ
    "signals: spawn and aclexec": {"hosts.allow": f"showargs: ALL: spawn {SIGNALS} > /D/spawned: "
                                                  f"aclexec {SIGNALS} > /D/aclexec\n",
                                   "conf": TCP, "connections": [LOCAL], "read": ["spawned", "aclexec"]},
    "signals: twist": {"hosts.allow": f"showargs: ALL: twist {SIGNALS}\n", "conf": TCP, "connections": [LOCAL]},
    "signals given to tcpd: spawn and aclexec": {
        "direct": "unix", "argv0": "showargs", "signals": GIVEN, "read": ["spawned", "aclexec"],
        "hosts.allow": f"showargs: ALL: spawn {SIGNALS} > /D/spawned: aclexec {SIGNALS} > /D/aclexec\n"},
    "signals given to tcpd: twist": {"direct": "unix", "argv0": "showargs", "signals": GIVEN,
                                     "hosts.allow": f"showargs: ALL: twist {SIGNALS}\n"},
}
OURS_ONLY = {
    "tcpd as argv[0]": {"conf": "127.0.0.1:{port} stream tcp nowait root {tcpd} tcpd /usr/sbin/showargs y\n",
                        "connections": [LOCAL], "variants": ["ours"]},
    "never execs itself": {"conf": "127.0.0.1:{port} stream tcp nowait root {tcpd} {tcpd}\n",
                           "connections": [LOCAL], "variants": ["ours"]},
    "user drops privileges": {"hosts.allow": "showargs: ALL: user nobody\n", "conf": TCP, "connections": [LOCAL]},
    "user.group": {"hosts.allow": "showargs: ALL: user nobody.nogroup\n", "conf": TCP, "connections": [LOCAL]},
    "aclexec output stays off the socket": {"hosts.allow": "showargs: ALL: aclexec echo leaked; exit 1\n",
                                            "hosts.deny": "ALL: ALL\n", "conf": TCP, "connections": [LOCAL]},
}
ALL = {**SCENARIOS, **OURS_ONLY}


@pytest.fixture(scope="module")
def results():
    prefix = install_ours()
    return dict(zip(ALL, run_scenarios(prefix, list(ALL.values())), strict=True))


def clients(variant: dict) -> list[str]:
    return [c.get("received") for c in variant["clients"]]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_as_debian(name, results):
    result = results[name]
    ref, ours = result["reference"], result["ours"]
    assert without_our_extras(log_lines(ours)) == log_lines(ref)
    assert [report(c) for c in ours["clients"]] == [report(c) for c in ref["clients"]]
    assert clients(ours) == clients(ref)
    assert ours["files"] == ref["files"]


def test_no_socket_and_unix_socket(results):
    pipe = results["stdin is a pipe"]["ours"]
    assert log_lines(pipe) == [(27, "showargs", "warning: can't get client address: Socket operation on non-socket"),
                               (27, "showargs", "getpeername: Socket operation on non-socket")]
    assert pipe["status"] == 0 and pipe["seconds"] >= 5  # the reference's exit path: pause, exit 0
    unix = results["stdin is an AF_UNIX socket"]["ours"]
    assert log_lines(unix)[-1] == (30, "showargs", "connect from localhost (localhost)")


def test_ip_options_are_logged_and_cleared(results):
    lines = log_lines(results["ip options"]["ours"])
    assert lines[0] == (29, "showargs", "connect from 127.0.0.1 with IP options (ignored): 07 07 08 7f 00 00 01 00")
    assert lines[1] == (30, "showargs", "connect from 127.0.0.1 (127.0.0.1)")


def test_source_routes_are_spotted_after_the_first_hop_address():
    from pywrap.endpoints import has_source_route

    first_hop = bytes([127, 0, 0, 1])
    assert has_source_route(first_hop + bytes([131, 7, 4, 10, 0, 0, 1]))  # loose
    assert has_source_route(first_hop + bytes([1, 137, 7, 4, 10, 0, 0, 1]))  # NOP, then strict
    assert not has_source_route(first_hop + bytes([7, 7, 8, 127, 0, 0, 1, 0]))  # record route
    assert not has_source_route(bytes([131, 7, 4, 10, 0, 0, 1]))  # the first 4 bytes are an address
    assert not has_source_route(first_hop + bytes([68, 0]))  # a zero length stops the walk


def test_exec_failure_exits_non_zero(results):
    ref, ours = results["exec failure, by hand"]["reference"], results["exec failure, by hand"]["ours"]
    assert log_lines(ours) == log_lines(ref)
    assert log_lines(ours)[-1] == (27, "nonexistent-daemon-xyz",
                                   "error: cannot execute /usr/sbin/nonexistent-daemon-xyz: No such file or directory")
    assert ref["status"] == 0 and ours["status"] == 1  # README, differences


def test_grant_and_refusal_lines(results):
    ref = results["advanced install"]["reference"]
    assert log_lines(ref) == [(30, "showargs", "connect from 127.0.0.1 (127.0.0.1)"),
                              (28, "showargs", "refused connect from 127.0.0.2 (127.0.0.2)")]
    assert report(ref["clients"][0])["argv"] == ["showargs", "a", "b"]
    assert ref["clients"][1]["received"] == ""  # a refused client gets not one byte
    assert report(results["absolute path in argv[0]"]["ours"]["clients"][0])["argv"] == ["showargs", "x"]
    assert report(results["easy install"]["ours"]["clients"][0])["argv"] == ["showargs", "e"]


def test_udp_datagram_reaches_daemon_and_refused_one_is_consumed(results):
    granted, refused = results["udp"]["ours"]["clients"]
    assert report(granted)["datagram"] == "hello"
    assert refused["received"] == "" and refused["queue"] == 0


def test_options_did_what_they_say(results):
    twisted = results["twist"]["ours"]
    assert twisted["clients"][0]["received"] == "twisted 127.0.0.1 showargs\n0022\n0\n"
    assert log_lines(twisted) == [(28, "showargs", "twist 127.0.0.1 to echo twisted 127.0.0.1 showargs; umask; id -u")]
    assert results["spawn"]["ours"]["files"]["spawned"] == \
        "127.0.0.1 127.0.0.1 127.0.0.1 showargs 127.0.0.1 localhost showargs@127.0.0.1 unknown\n"
    banner = results["banners"]["ours"]["clients"][0]["received"]
    assert banner.startswith("hello 127.0.0.1 from showargs [x]\r\nunbalanced [ line\nend\r\n{")
    env = report(results["setenv umask nice"]["ours"]["clients"][0])
    assert (env["FOO"], env["umask"], env["nice"]) == ("bar baz", "0o77", 7)
    assert [line[0] for line in log_lines(results["severity"]["ours"])] == [133, 26]


def test_rule_errors_refuse_without_a_byte_to_the_client(results):
    ours = results["broken rule file"]["ours"]
    assert ours["clients"][0]["received"] == ""
    assert log_lines(ours) == [(27, "showargs", 'error: /etc/hosts.allow, line 1: bad option name: "bogus"'),
                               (28, "showargs", "refused connect from 127.0.0.1 (127.0.0.1)")]


def test_tcpd_as_argv0_takes_the_daemon_from_argv1(results):
    ours = results["tcpd as argv[0]"]["ours"]
    assert report(ours["clients"][0])["argv"] == ["showargs", "y"]
    assert log_lines(ours) == [(30, "showargs", "connect from 127.0.0.1 (127.0.0.1)")]


def test_never_execs_itself(results):
    ours = results["never execs itself"]["ours"]
    assert ours["clients"][0]["received"] == ""
    (line,) = log_lines(ours)
    assert line[0] == 27 and "is this tcpd itself; refusing to run it" in line[2]


def test_user_option_really_drops_privileges(results):
    nobody = pwd.getpwnam("nobody")
    ref = report(results["user drops privileges"]["reference"]["clients"][0])
    ours = report(results["user drops privileges"]["ours"]["clients"][0])
    assert ref["uid"] == 0  # Debian only checks the name
    assert (ours["uid"], ours["gid"]) == (nobody.pw_uid, nobody.pw_gid)
    assert 0 not in ours["groups"]
    grouped = report(results["user.group"]["ours"]["clients"][0])
    assert (grouped["uid"], grouped["gid"], grouped["groups"]) == (nobody.pw_uid, 65534, [])


def test_aclexec_output_never_reaches_the_client(results):
    ref = results["aclexec output stays off the socket"]["reference"]["clients"][0]["received"]
    ours = results["aclexec output stays off the socket"]["ours"]["clients"][0]["received"]
    assert ref.startswith("leaked")  # Debian hands aclexec the client's socket
    assert ours == ""


def status_lines(text: str) -> dict:
    return dict(line.split(":\t") for line in text.splitlines())


def test_what_tcpd_runs_starts_with_the_signal_state_tcpd_was_given(results):
    """Not the interpreter's (SigIgn 0000000001001000: SIGPIPE and SIGXFSZ ignored), nor the watchdog's
    (SIGALRM caught and unblocked): the daemon, spawn, aclexec and twist get what tcpd was given, spawn with
    SIGHUP ignored as well (as the reference's does, but not aclexec). test_same_as_debian compares them with
    Debian's. The commands' masks show as empty: /bin/sh (dash) unblocks every signal as it starts."""
    given = inherited_ignored()
    inetd = {"SigIgn": f"{given:016x}", "SigBlk": "0000000000000000"}
    spawned = results["signals: spawn and aclexec"]["ours"]
    assert {k: report(spawned["clients"][0])[k] for k in inetd} == inetd
    assert status_lines(spawned["files"]["spawned"]) == {**inetd, "SigIgn": f"{given | 1:016x}"}
    assert status_lines(spawned["files"]["aclexec"]) == inetd
    assert status_lines(results["signals: twist"]["ours"]["clients"][0]["received"]) == inetd
    # by hand, with SIGPIPE, SIGALRM and SIGUSR2 ignored, SIGALRM and SIGUSR1 blocked
    ignored, blocked = given | 1 << 12 | 1 << 13 | 1 << 11, 1 << 13 | 1 << 9
    spawned = results["signals given to tcpd: spawn and aclexec"]["ours"]
    daemon = report(spawned["clients"][0])
    assert (daemon["SigIgn"], daemon["SigBlk"]) == (f"{ignored:016x}", f"{blocked:016x}")
    by_sh = {"SigIgn": f"{ignored:016x}", "SigBlk": "0000000000000000"}
    assert status_lines(spawned["files"]["spawned"]) == {**by_sh, "SigIgn": f"{ignored | 1:016x}"}
    assert status_lines(spawned["files"]["aclexec"]) == by_sh
    assert status_lines(results["signals given to tcpd: twist"]["ours"]["clients"][0]["received"]) == by_sh
