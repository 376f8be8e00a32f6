"""try-from: show what the wrapper learns about both ends of the connection on fd 0.

Run it as a service (inetd, or `rsh host try-from`) with a network connection on fd 0. It finds the
endpoints exactly as tcpd does (no access control, no exec) and prints the reference's eight lines,
values %-expanded (so lookups happen in this order, and values are sanitised as the reference does).
Warnings go to syslog, as tcpd's do: under inetd, stderr is the connection too. Exit status 0.
`--help` as the only argument (ours; Debian's ignores it like any argument) prints the usage instead.
"""

from __future__ import annotations

import os
import sys

LINES = (
    ("client address  (%a)", "%a"), ("client hostname (%n)", "%n"), ("client username (%u)", "%u"),
    ("client info     (%c)", "%c"), ("server address  (%A)", "%A"), ("server hostname (%N)", "%N"),
    ("server process  (%d)", "%d"), ("server info     (%s)", "%s"),
)

HELP = """usage: {prog}
Run it as a service with a network connection on standard input (`rsh host /usr/local/sbin/try-from`,
or an inetd.conf line): it prints what tcpd learns about both ends of that connection, the values of
%a %n %u %c %A %N %d %s, and runs nothing. Other arguments are ignored. Exit status 0.
"""


def main() -> int:
    if sys.argv[1:] == ["--help"]:  # only alone: any other arguments stay ignored, as in the reference
        os.write(1, HELP.format(prog=os.path.basename(sys.argv[0])).encode())
        return 0
    from pywrap.endpoints import discover
    from pywrap.expand import expand
    from pywrap.tcpd import Tcpd
    from pywrap.text import encode

    argv = [os.fsencode(a).decode("latin-1") for a in sys.argv]
    tool = Tcpd("", [os.path.basename(argv[0]) if argv else "try-from"])
    tool.discovery = discover(0, tool.diag)
    request = tool.build_request()
    out = "".join(f"{label}: {expand(letter, request, tool.diag.warning)}\n" for label, letter in LINES)
    os.write(1, encode(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
