"""Tables and /file lists that are not regular files, or are too big: refused at once, fail closed.

A FIFO, /dev/zero, /dev/urandom, /dev/null (character devices, through symbolic links) and a sparse file one
byte over settings.TABLE_MAX_BYTES, each as hosts.allow, as hosts.deny and as a /file list, through our
tcpdmatch and tcpdchk and through the installed tcpd on a real loopback connection (tests/nsbounded.py, in a
private mount namespace). Each program runs under a time limit and an address-space limit: a hang or an
unbounded read shows up as rc "timeout" (or a crash), never as a slow test. Debian's tcpdmatch is run on
some of them to pin the differences table: it hangs on a FIFO (a table or a /file list) and on a /dev/zero
table, crashes on a /dev/zero list, and reads a big table.
"""

from __future__ import annotations

import os

import pytest
from bounded_sandbox import run
from compare import verdicts
from tcpd_sandbox import install_ours

from pywrap import settings

LIMIT = 20  # seconds for one run of ours: far more than any refusal needs, far less than forever
REFERENCE_LIMIT = 3  # seconds for Debian's tcpdmatch where it is expected to hang

KINDS = {
    "fifo": ({"fifo": True}, "a FIFO, not a regular file"),
    "/dev/zero": ({"link": "/dev/zero"}, "a character device, not a regular file"),
    "/dev/urandom": ({"link": "/dev/urandom"}, "a character device, not a regular file"),
    "/dev/null": ({"link": "/dev/null"}, "a character device, not a regular file"),
    # read in full, its first rule would grant
    "oversize": ({"sparse": settings.TABLE_MAX_BYTES + 1, "text": "echo: 127.0.0.1\n"},
                 f"larger than {settings.TABLE_MAX_BYTES} bytes, the limit for tables and /file lists"),
}

# where the file goes -> (the other tables, verdict, tcpd's exit status). A refused table is an error table:
# hosts.allow grants nothing (hosts.deny still decides), hosts.deny denies; a refused /file list denies.
# The last two verdicts are the opposite of what reading the file as empty would give.
PLACES = {
    "hosts.allow": ({"hosts.deny": "ALL: ALL\n"}, "denied", 0),
    "hosts.allow, hosts.deny silent": ({"hosts.deny": "ALL: 10.9.9.9\n"}, "granted", 0),
    "hosts.deny": ({}, "denied", 0),
    "/file list": ({"hosts.allow": "echo: ALL EXCEPT /D/list\n"}, "denied", 1),
}


def bad_files(kind: str, place: str) -> dict:
    spec = KINDS[kind][0]
    files = dict(PLACES[place][0])
    files["list" if place == "/file list" else place.split(",")[0]] = spec
    return files


def expected_message(kind: str, place: str, directory: str, table_dir: str) -> str:
    reason = KINDS[kind][1]
    if place == "/file list":
        return f"{directory}/list: {reason}: access denied"
    return f"cannot open {table_dir}{place.split(',')[0]}: {reason}"


GRID = [(kind, place) for kind in KINDS for place in PLACES]


@pytest.fixture(scope="module")
def tcpdmatch_results():
    cases = [{"run": "tcpdmatch", "files": bad_files(kind, place), "args": ["echo", "127.0.0.1"],
              "timeout": LIMIT} for kind, place in GRID]
    return dict(zip(GRID, run(cases), strict=True))


@pytest.mark.parametrize(("kind", "place"), GRID)
def test_tcpdmatch_refuses_what_is_not_a_bounded_regular_file(kind, place, tcpdmatch_results):
    result = tcpdmatch_results[kind, place]
    assert result["rc"] == 0, result
    assert verdicts(result["stdout"]) == [PLACES[place][1]]
    stderr = result["stderr"]
    assert expected_message(kind, place, result["dir"], "") in stderr
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def installed() -> str:
    return install_ours(REFUSE_PAUSE="0")  # tables in /etc (private to the namespace), no pause


@pytest.mark.parametrize("place", list(PLACES))
def test_tcpd_refuses_what_is_not_a_bounded_regular_file(place, installed):
    grid = [(kind, place) for kind in KINDS]
    cases = [{"run": "tcpd", "files": bad_files(kind, place), "args": ["/bin/echo", "ran"], "timeout": LIMIT}
             for kind, _ in grid]
    for (kind, _), result in zip(grid, run(cases, installed), strict=True):
        _, want, rc = PLACES[place]
        texts = [entry["text"] for entry in result["log"] if entry["ident"] == "echo"]
        assert result["rc"] == rc, (kind, result)
        assert any(expected_message(kind, place, result["dir"], "/etc/") in t for t in texts), (kind, texts)
        if want == "granted":
            assert result["received"] == "ran\n", (kind, result)
            assert "connect from 127.0.0.1 (127.0.0.1)" in texts, (kind, texts)
        else:
            assert result["received"] == "", (kind, result)
            assert "refused connect from 127.0.0.1 (127.0.0.1)" in texts, (kind, texts)


def test_tcpdchk_calls_a_refused_table_an_error():
    cases = [{"run": "tcpdchk", "files": {"hosts.deny": KINDS[kind][0]}, "args": [], "timeout": LIMIT}
             for kind in ("fifo", "oversize")]
    for kind, result in zip(("fifo", "oversize"), run(cases), strict=True):
        assert result["rc"] == 1, (kind, result)
        assert f"warning: cannot open hosts.deny: {KINDS[kind][1]}" in result["stderr"], (kind, result)
        assert "tcpd denies every client that hosts.allow does not grant" in result["stderr"], (kind, result)


def test_tcpdchk_calls_a_refused_file_list_an_error():
    kinds = ("fifo", "/dev/zero", "oversize")
    cases = [{"run": "tcpdchk", "files": bad_files(kind, "/file list"), "args": [], "timeout": LIMIT}
             for kind in kinds]
    for kind, result in zip(kinds, run(cases), strict=True):
        assert result["rc"] == 1, (kind, result)
        assert f"/list: {KINDS[kind][1]}: tcpd denies every client this list is asked about" in result["stderr"], (
            kind, result)


def test_the_reference_hangs_on_a_fifo_and_dev_zero_and_reads_a_big_file():
    places = [("fifo", "hosts.allow"), ("fifo", "/file list"), ("/dev/zero", "hosts.deny"),
              ("/dev/zero", "/file list"), ("oversize", "hosts.allow")]
    cases = [{"run": "reference", "files": bad_files(kind, place), "args": ["echo", "127.0.0.1"],
              "timeout": REFERENCE_LIMIT} for kind, place in places]
    fifo_table, fifo_list, zero_table, zero_list, big = run(cases)
    assert [fifo_table["rc"], fifo_list["rc"], zero_table["rc"]] == ["timeout"] * 3
    assert zero_list["rc"] == -11  # SIGSEGV
    assert verdicts(big["stdout"]) == ["granted"]  # ours: denied, the table is refused


def test_a_table_that_grows_past_the_bound_while_read_is_refused(tmp_path, monkeypatch):
    from pywrap.tables import Refused, open_regular, read_bounded, read_regular

    monkeypatch.setattr(settings, "TABLE_MAX_BYTES", 16)
    path = tmp_path / "hosts.deny"
    path.write_bytes(b"ALL: 10.0.0.1\n")
    fd, size = open_regular(str(path))
    try:
        assert size == 14
        with open(path, "ab") as f:
            f.write(b"ALL: 10.0.0.2\n")  # 28 bytes now: more than the bound, though fstat said 14
        with pytest.raises(Refused, match="larger than 16 bytes"):
            read_bounded(fd)
    finally:
        os.close(fd)
    path.write_bytes(b"x" * 16)
    assert read_regular(str(path)) == b"x" * 16  # the bound itself is allowed
