"""safe_finger runs finger with the signal dispositions Debian's would give it, not the interpreter's.

Python ignores SIGPIPE and SIGXFSZ at start-up and exec keeps that; Debian's safe_finger, a C program, passes
on what it was given. A fake finger (the only one on safe_finger's PATH, as in tests/test_helpers.py) shows
the SigIgn line of its /proc/PID/status, beside Debian's safe_finger.
"""

from __future__ import annotations

from tcpd_sandbox import inherited_ignored
from test_helpers import run_both

SHOW_SIGNALS = 'grep "^SigIgn" /proc/self/status; exit 0'  # grep inherits what the fake finger was given


def test_finger_starts_with_the_signal_dispositions_safe_finger_was_given():
    ref, ours = run_both(SHOW_SIGNALS, ["alice"])
    assert ref == (0, f" SigIgn:\t{inherited_ignored():016x}\n".encode(), b"")
    assert ours == ref  # it was SigIgn 0000000001001000: SIGPIPE and SIGXFSZ ignored
