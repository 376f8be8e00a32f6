"""A real link-local IPv6 client (fe80::1%lo), through Debian's tcpd and ours under a real openbsd-inetd, in
mount and network namespaces of their own (tests/nstcpd.py with "link_local": loopback up, fe80::1 on it).

/etc/hosts names fe80::1, so the reverse lookup finds a name; the forward lookup gives fe80::1 without a
scope, which the reference compares with the client's scope (the interface it came in on): the name does
not verify, and the client is paranoid, with Debian's `host name/address mismatch` warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
from sandbox import DEFAULT_ETC
from tcpd_sandbox import install_ours, log_lines, report

HERE = os.path.dirname(os.path.abspath(__file__))
ETC = {**DEFAULT_ETC, "hosts": "127.0.0.1 localhost\nfe80::1 linklocal\n"}
CONF = "[::1]:{port} stream tcp6 nowait root {tcpd} showargs\n"
CLIENT = {"source": "fe80::1%lo"}
SCENARIOS = {
    "KNOWN": {"hosts.allow": "showargs: KNOWN\n", "hosts.deny": "ALL: ALL\n", "conf": CONF,
              "connections": [CLIENT]},
    "PARANOID": {"hosts.allow": "showargs: PARANOID: twist echo %a %n %h\n", "conf": CONF,
                 "connections": [CLIENT]},
}


@pytest.fixture(scope="module")
def results() -> dict:
    prefix = install_ours(REFUSE_PAUSE="1")
    with tempfile.TemporaryDirectory(prefix="pywrap-scoped-spec-") as tmp:
        os.chmod(tmp, 0o755)
        spec = {"prefix": prefix, "workdir": tmp, "etc": ETC, "scenarios": list(SCENARIOS.values()),
                "base_port": 20000, "link_local": True}  # a network namespace of its own: any port is free
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        proc = subprocess.run(["unshare", "-m", "-n", "--propagation", "private", sys.executable,
                               os.path.join(HERE, "nstcpd.py"), spec_path, out_path],
                              capture_output=True, text=True, timeout=600, cwd=HERE)
        assert proc.returncode == 0, proc.stderr[-4000:]
        with open(out_path) as f:
            return dict(zip(SCENARIOS, json.load(f), strict=True))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_link_local_client_is_paranoid_as_in_debian(name, results):
    ref, ours = results[name]["reference"], results[name]["ours"]
    assert log_lines(ours) == log_lines(ref)
    assert [c["received"] for c in ours["clients"]] == [c["received"] for c in ref["clients"]]


def test_what_debian_says_of_it(results):
    ref = results["KNOWN"]["reference"]
    assert log_lines(ref) == [
        (27, "showargs", "warning: /etc/hosts.allow, line 1: host name/address mismatch: fe80::1%lo != linklocal"),
        (28, "showargs", "refused connect from fe80::1%lo (fe80::1%lo)")]
    assert report(ref["clients"][0]) is None
    assert results["PARANOID"]["reference"]["clients"][0]["received"] == "fe80::1%lo paranoid fe80::1%lo\n"
