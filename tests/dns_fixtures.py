"""Real name servers for the tests, on loopback only: dnsmasq with the records below, and a black hole.

`DnsServers` starts dnsmasq on 127.0.0.153:53 (authoritative for `test` and 127.0.0.0/8 reverse, no upstream,
no /etc/hosts) and binds a UDP socket on 127.0.0.154:53 that reads nothing and answers nothing (a name server
that never replies). Both are stopped, by pid, when the tests are done. The programs under test reach them
only through the private resolv.conf of the namespace they run in.
"""

from __future__ import annotations

import socket
import subprocess
import time

import debian

DNSMASQ = "127.0.0.153"
BLACK_HOLE = "127.0.0.154"
HOSTILE_PTR = "$(touch /tmp/pywrap-pwned)"
HOSTILE_PTR_2 = "`touch /tmp/pywrap-pwned`;touch /tmp/pywrap-pwned"

RECORDS = [
    "--host-record=good.test,127.0.0.10",           # forward and reverse agree
    "--ptr-record=11.0.0.127.in-addr.arpa,forged.test",  # PTR claims a name whose A is elsewhere
    "--host-record=forged.test,127.0.0.99",
    f"--ptr-record=12.0.0.127.in-addr.arpa,{HOSTILE_PTR}",  # shell metacharacters in a PTR
    f"--ptr-record=14.0.0.127.in-addr.arpa,{HOSTILE_PTR_2}",
    "--ptr-record=15.0.0.127.in-addr.arpa,1.2.3.4",  # a PTR that is an address
    "--ptr-record=16.0.0.127.in-addr.arpa,www.test",  # a PTR naming an alias
    "--cname=www.test,good.test",
    "--host-record=six.test,::1",                    # IPv6 forward and reverse
    "--host-record=nodots-alias.test,127.0.0.17",
    "--host-record=multi.test,127.0.0.18",
    "--host-record=multi.test,127.0.0.19",
]


class DnsServers:
    def __enter__(self) -> DnsServers:
        self.black_hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.black_hole.bind((BLACK_HOLE, 53))
        self.dnsmasq = subprocess.Popen(
            [debian.DNSMASQ, "--conf-file=/dev/null", "--keep-in-foreground", "--no-resolv", "--no-hosts",
             f"--listen-address={DNSMASQ}", "--bind-interfaces", "--port=53", "--user=root",
             "--local=/test/", "--local=/127.in-addr.arpa/", "--local=/ip6.arpa/", *RECORDS],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):  # ready when it answers
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.settimeout(0.1)
                    probe.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04good\x04test\x00\x00\x01\x00\x01",
                                 (DNSMASQ, 53))
                    if probe.recv(512)[:2] == b"\x12\x34":
                        return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("dnsmasq did not start: " + (self.dnsmasq.stderr.read().decode() if self.dnsmasq.stderr else ""))

    def __exit__(self, *exc) -> None:
        self.dnsmasq.terminate()
        try:
            self.dnsmasq.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.dnsmasq.kill()
            self.dnsmasq.wait()
        self.black_hole.close()


def resolv_conf(server: str, options: str = "options timeout:1 attempts:1") -> str:
    return f"nameserver {server}\n{options}\n"


HOSTS = "127.0.0.1 localhost\n"  # ::1 is left to DNS (six.test)
