"""Compare one case's reference result with ours: stdout byte for byte, exit status, diagnostics.

Our exit status differs from Debian's by design only where the README's differences table says so:
usage errors exit 2 (Debian: 1). Diagnostics are compared in order after mapping both to one vocabulary
(see sandbox.reference_diagnostics / our_diagnostics).
"""

from __future__ import annotations

import re

from sandbox import our_diagnostics, reference_diagnostics

# Diagnostics only we give (README, "Differences from Debian's tcpd"); dropped before comparing.
OUR_EXTRAS = [
    re.compile(r"warning: \S+: is a directory, read as an empty table$"),
    re.compile(r"error: .*/file lists nested deeper than \d+ \(a loop\?\)$"),
    re.compile(r"warning: (\S+, line \d+: )?DNS lookup failed: "),
    # tcpdchk's checks the reference lacks
    re.compile(r"error: \S+, line \d+: \S+: IPv6 address without \[brackets\]: "),
    # what tcpd skips or never reads (README, tcpdchk findings): one pattern per line, whole
    # a line without newline or over 2046 characters: tcpd reads the table no further
    re.compile(r"^error: \S+, line \d+: tcpd stops reading \S+ here: (no rule from here on grants anything"
               r"|every client that hosts\.allow does not grant is denied)$"),
    # a line without ":": tcpd skips it
    re.compile(r'^error: \S+, line \d+: no ":" separator: tcpd skips this line, so this rule never '
               r"(grants|denies) anything$"),
    # a table tcpd cannot open (no line number: the warning before it names none either)
    re.compile(r"^error: tcpd ignores \S+ when it cannot open it: no rule in it grants anything$"),
    re.compile(r"^error: tcpd denies every client that hosts\.allow does not grant when it cannot open \S+$"),
    # an option's %-expansion over tcpd's buffer: Debian's tcpdchk gives the warning and exits there (exit 0)
    re.compile(r"^error: \S+, line \d+: %-expansion over tcpd's buffer with tcpdchk's placeholder values: tcpd "
               r"refuses, without a verdict, every connection whose expansion overflows; rules after this one "
               r"were not checked$"),
    # /file lists nested deeper than the matcher follows them (where Debian's tcpdchk recurses until SIGSEGV)
    re.compile(r"^error: \S+, line \d+: \S+: /file lists nested deeper than \d+ \(a loop\?\): tcpd denies every "
               r"client this list is asked about$"),
    re.compile(r"warning: \S+, line \d+: duplicate of \S+, line \d+: this rule is never used$"),
    re.compile(r"warning: \S+, line \d+: never used: \S+, line \d+ matches every client of "),
]


def without_extras(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, t) for k, t in entries if not any(p.search(t) for p in OUR_EXTRAS)]


def normalise(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(kind, text.rstrip()) for kind, text in entries]


def differences(result: dict, compare_logs: bool = True, program: str = "tcpdmatch") -> list[str]:
    ref, ours = result["reference"], result["ours"]
    problems = []
    if ref["stdout"] != ours["stdout"]:
        problems.append(f"stdout differs:\n  reference: {ref['stdout']!r}\n  ours:      {ours['stdout']!r}")
    expected_rc = ref["rc"]
    if program == "tcpdchk" and ref["rc"] == 0:  # ours exits 1 when it reported an error
        expected_rc = 1 if any(line.split(": ")[1:2] == ["error"] or ": error: " in line
                               for line in ours["stderr"].split("\n")) else 0
    if expected_rc != ours["rc"]:
        problems.append(f"exit status differs: reference {ref['rc']!r}, ours {ours['rc']!r}")
    if compare_logs:
        ours_all = without_extras(our_diagnostics(ours))
        # lines the reference prints on stderr itself (not through syslog): compared apart, in order
        want_direct = [line.replace("/usr/sbin/tcpdmatch", "tcpdmatch").replace("/usr/sbin/tcpdchk", "tcpdchk")
                       for line in ref["stderr"].split("\n") if line]
        got_direct = [text for kind, text in ours_all if kind == "other"]  # notes are ours alone
        if want_direct != got_direct:
            problems.append(f"stderr differs:\n  reference: {want_direct}\n  ours:      {got_direct}")
        want = normalise(reference_diagnostics(ref))
        got = normalise([entry for entry in ours_all if entry[0] not in ("other", "note")])
        if want != got:
            problems.append(f"diagnostics differ:\n  reference: {want}\n  ours:      {got}")
    return problems


def verdicts(stdout: str) -> list[str]:
    return [line.split()[-1] for line in stdout.splitlines() if line.startswith("access:")]
