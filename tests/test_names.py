"""Host names through DNS: a real dnsmasq (and a black-hole name server) reached only through the private
resolv.conf of the namespace, the same cases through tcpdmatch and through tcpd under inetd, for Debian's
programs and ours: verified names, forged and hostile PTRs, aliases, NXDOMAIN, IPv6, PARANOID, %-expansions
reaching a shell, and the time a black-hole name server costs.
"""

from __future__ import annotations

import os

import pytest
from compare import differences, verdicts
from dns_fixtures import BLACK_HOLE, DNSMASQ, HOSTS, DnsServers, resolv_conf
from sandbox import run_cases
from tcpd_sandbox import install_ours, log_lines, run_scenarios, without_our_extras

ETC = {"hosts": HOSTS, "resolv.conf": resolv_conf(DNSMASQ)}
RULES = "sshd: PARANOID : spawn echo %n %h\nsshd: .test EXCEPT forged.test\nsshd: UNKNOWN\n"

TCPDMATCH = {
    "verified name": ["sshd", "good.test"],
    "alias": ["sshd", "www.test"],
    "forged PTR (reverse of the A fails)": ["sshd", "forged.test"],
    "nxdomain": ["sshd", "nosuch.test"],
    "ipv6 name": ["sshd", "six.test"],
    "two addresses": ["sshd", "multi.test"],
    "server by name": ["sshd@good.test", "10.0.0.1"],
    "user and name": ["sshd", "root@good.test"],
}


@pytest.fixture(scope="module")
def dns():
    with DnsServers() as servers:
        yield servers


@pytest.fixture(scope="module")
def tcpdmatch_results(dns):
    files = {"hosts.allow": RULES, "hosts.deny": "ALL: ALL\n"}
    cases = [{"files": files, "args": args} for args in TCPDMATCH.values()]
    return dict(zip(TCPDMATCH, run_cases(cases, etc=ETC), strict=True))


@pytest.mark.parametrize("name", [n for n in TCPDMATCH if n != "two addresses"])
def test_tcpdmatch_names_agree(name, tcpdmatch_results):
    assert differences(tcpdmatch_results[name]) == []


def test_tcpdmatch_two_addresses_agree_up_to_dns_order(tcpdmatch_results):
    """dnsmasq rotates the order of multiple A records between queries, and each program asks on its own."""
    result = tcpdmatch_results["two addresses"]
    blocks = [sorted(b.strip() for b in r["stdout"].split("\n\n")) for r in (result["reference"], result["ours"])]
    assert blocks[0] == blocks[1]
    assert result["reference"]["rc"] == result["ours"]["rc"] == 0


def test_tcpdmatch_sees_dns(tcpdmatch_results):
    assert "client:   hostname good.test" in tcpdmatch_results["verified name"]["ours"]["stdout"]
    assert verdicts(tcpdmatch_results["two addresses"]["ours"]["stdout"]) == ["granted", "granted"]
    assert tcpdmatch_results["nxdomain"]["ours"]["rc"] == 1


TCP = "127.0.0.1:{port} stream tcp nowait root {tcpd} showargs\n"
SPAWN = "showargs: ALL: spawn echo %a %h %n %c >> /D/spawned\n"


def clients(*addresses: str) -> list[dict]:
    return [{"source": a} for a in addresses]


TCPD = {
    "names in spawn": {"hosts.allow": SPAWN, "conf": TCP, "read": ["spawned"],
                       "connections": clients("127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13",
                                              "127.0.0.14", "127.0.0.15", "127.0.0.16")},
    "name patterns": {"hosts.allow": "showargs: .test\nshowargs: PARANOID: severity local0.notice\n",
                      "hosts.deny": "ALL: ALL\n", "conf": TCP,
                      "connections": clients("127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13")},
    "ipv6 name": {"hosts.allow": "showargs: six.test\n", "hosts.deny": "ALL: ALL\n",
                  "conf": "[::1]:{port} stream tcp6 nowait root {tcpd} showargs\n", "connections": clients("::1")},
}


@pytest.fixture(scope="module")
def prefix():
    return install_ours()


@pytest.fixture(scope="module")
def tcpd_results(dns, prefix):
    return dict(zip(TCPD, run_scenarios(prefix, list(TCPD.values()), etc=ETC), strict=True))


@pytest.mark.parametrize("name", list(TCPD))
def test_tcpd_names_agree(name, tcpd_results):
    ref, ours = tcpd_results[name]["reference"], tcpd_results[name]["ours"]
    assert without_our_extras(log_lines(ours)) == log_lines(ref)
    assert ours["files"] == ref["files"]
    assert [c["received"] for c in ours["clients"]] == [c["received"] for c in ref["clients"]]


def test_hostile_ptr_never_reaches_a_shell(tcpd_results):
    assert not os.path.exists("/tmp/pywrap-pwned")
    spawned = tcpd_results["names in spawn"]["ours"]["files"]["spawned"].splitlines()
    # %h comes before %n: no lookup yet, so the address; %c after it: the name once it is known
    assert spawned[0] == "127.0.0.10 127.0.0.10 good.test good.test"
    assert spawned[1] == "127.0.0.11 127.0.0.11 paranoid 127.0.0.11"  # forged: the name is not believed
    assert spawned[2] == "127.0.0.12 127.0.0.12 unknown 127.0.0.12"  # hostile PTR: rejected like libc does
    assert spawned[3] == "127.0.0.13 127.0.0.13 unknown 127.0.0.13"  # no PTR at all
    assert spawned[4] == "127.0.0.14 127.0.0.14 unknown 127.0.0.14"
    lines = [line[2] for line in log_lines(tcpd_results["names in spawn"]["ours"])]
    assert "warning: /etc/hosts.allow, line 1: host name/address mismatch: 127.0.0.11 != forged.test" in lines
    assert "warning: /etc/hosts.allow, line 1: host name/name mismatch: reverse lookup results in non-FQDN 1.2.3.4" \
        in lines
    assert "warning: /etc/hosts.allow, line 1: host name/name mismatch: www.test != good.test" in lines


def test_black_hole_name_server_costs_at_most_the_deadline(dns, prefix):
    """glibc waits timeout x attempts (5 s x 2); ours gives a whole check DNS_TIMEOUT (5 s) and says why."""
    scenario = {"hosts.allow": "showargs: .test\n", "hosts.deny": "ALL: ALL\n", "conf": TCP,
                "connections": [{"source": "127.0.0.10", "wait": 30}]}
    (result,) = run_scenarios(prefix, [scenario], etc={"hosts": HOSTS, "resolv.conf": resolv_conf(BLACK_HOLE, "")})
    ref, ours = result["reference"], result["ours"]
    assert log_lines(ref)[-1][2] == "refused connect from 127.0.0.10 (127.0.0.10)"
    assert without_our_extras(log_lines(ours)) == log_lines(ref)
    assert any("DNS lookup failed: PTR 10.0.0.127.in-addr.arpa: 127.0.0.154 did not answer" in line[2]
               for line in log_lines(ours))
    ref_seconds, our_seconds = ref["clients"][0]["seconds"], ours["clients"][0]["seconds"]
    print(f"black-hole name server: Debian {ref_seconds:.1f} s, pywrap {our_seconds:.1f} s")
    assert our_seconds < 6.5
    assert ref_seconds > our_seconds


def test_paranoid_build_and_explicit_name_servers(dns):
    """make install PARANOID=1 DNS_SERVERS=...: names come from the configured server although resolv.conf
    names a black hole, and a client whose name does not verify is refused before any rule is read."""
    prefix = install_ours(PARANOID="1", DNS_SERVERS=f"{DNSMASQ}#53")
    scenario = {"hosts.allow": "showargs: ALL\n", "conf": TCP, "variants": ["ours"],
                "connections": clients("127.0.0.10", "127.0.0.11")}
    (result,) = run_scenarios(prefix, [scenario], etc={"hosts": HOSTS, "resolv.conf": resolv_conf(BLACK_HOLE)})
    assert [line[1:] for line in log_lines(result["ours"])] == [
        ("showargs", "connect from good.test (127.0.0.10)"),
        ("showargs", "warning: host name/address mismatch: 127.0.0.11 != forged.test"),
        ("showargs", "refused connect from 127.0.0.11 (127.0.0.11)"),
    ]


@pytest.mark.parametrize("options,want", [
    ("ndots:2x timeout:0 attempts:9", (2, 1.0, 5)),
    ("ndots:-3 timeout:31 attempts:3", (13, 30.0, 3)),  # ndots lands in glibc's 4-bit field
    ("ndots:" + "9" * 5000 + " timeout:" + "9" * 5000, (15, 1.0, 2)),  # atoi: saturated, narrowed to -1
    ("ndots:\xb2 ndots timeout", (0, 5.0, 2)),  # a latin-1 digit is no digit to atoi; no colon, no option
    ("attempts:0", (1, 5.0, 1)),  # glibc would make no query at all (README, differences)
])
def test_resolv_conf_numbers_are_atois(tmp_path, options, want):
    """Issue 13, item 3: resolv.conf's option numbers are glibc's res_setoptions' (atoi, then capped), never
    Python's int(): 5,000 digits or a `²` made every lookup crash."""
    from pywrap.resolver import read_resolv_conf

    path = tmp_path / "resolv.conf"
    path.write_bytes(f"nameserver 127.0.0.1\noptions {options}\n".encode("latin-1"))
    conf = read_resolv_conf(str(path))
    assert (conf.ndots, conf.timeout, conf.attempts) == want
