"""tcpd looks a link-local client up with its scope: a name whose forward lookup gives fe80::1 without one
does not verify for fe80::1%lo (the reference compares sin6_scope_id too), so the client is paranoid.

In-process, with tcpd's own request building (Tcpd.build_request) over a discovered client whose address
carries its scope, as getnameinfo(NI_NUMERICHOST) prints it, and a hosts file of the test's own.
"""

from __future__ import annotations

import _socket as socket

import pytest

from pywrap import settings
from pywrap.endpoints import Discovery, Side
from pywrap.tcpd import Tcpd


@pytest.fixture
def names(tmp_path, monkeypatch):
    hosts = tmp_path / "hosts"
    hosts.write_text("fe80::1 linklocal\n")
    monkeypatch.setattr(settings, "HOSTS_FILE", str(hosts))
    monkeypatch.setattr(settings, "DNS_SERVERS", "127.0.0.1#1")  # never asked: the hosts file answers


def client_name(address: str) -> tuple[str, list]:
    tool = Tcpd("", ["showargs"])
    said: list = []
    tool.diag.emit = lambda kind, text: said.append((kind, text))
    six = socket.AF_INET6
    client = Side(six, socket.inet_pton(six, "fe80::1"), 1234, address)
    tool.discovery = Discovery(None, client, Side(six, socket.inet_pton(six, "::1"), 79, "::1"), False)
    return tool.build_request().client.name, said


def test_a_scoped_client_does_not_verify(names):
    assert client_name("fe80::1%lo") == (
        "paranoid", [("warning", "host name/address mismatch: fe80::1%lo != linklocal")])


def test_the_same_address_without_a_scope_does(names):
    assert client_name("fe80::1") == ("linklocal", [])
