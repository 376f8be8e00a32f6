"""Man pages: every page renders without a single groff or man warning, every page is installed by
make install, and hosts_options(5) documents exactly the options the code accepts."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from pywrap.options import SPECS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAN = os.path.join(ROOT, "man")
PAGES = sorted(p for p in os.listdir(MAN) if p[-2:] in (".5", ".8"))
EXPECTED = {"tcpd.8", "tcpdmatch.8", "tcpdchk.8", "try-from.8", "safe_finger.8", "hosts_access.5",
            "hosts_options.5"}


def test_every_page_is_there():
    assert EXPECTED <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_cleanly(page):
    path = os.path.join(MAN, page)
    groff = subprocess.run(["groff", "-ww", "-man", "-z", path], capture_output=True, text=True)
    assert groff.returncode == 0 and groff.stderr == "", groff.stderr
    man = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                         env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"})
    assert man.returncode == 0 and man.stderr == "", man.stderr
    assert len(man.stdout) > 500


def documented_options() -> set[str]:
    with open(os.path.join(MAN, "hosts_options.5"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    found = set()
    for before, line in zip(lines, lines[1:], strict=False):
        match = re.match(r"^\.B (\w+)", line)
        if before.strip() == ".TP" and match:
            found.add(match.group(1))
    return found


def test_hosts_options_documents_exactly_the_accepted_options():
    assert documented_options() == set(SPECS)
