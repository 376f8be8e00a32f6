"""try-from: show what the wrapper learns about both ends of the connection on fd 0.

Run it as a service (inetd, or `rsh host try-from`) with a network connection on fd 0. It finds the
endpoints exactly as tcpd does (no access control, no exec) and prints the reference's eight lines,
values %-expanded (so lookups happen in this order, and values are sanitised as the reference does).
Warnings go to syslog, as tcpd's do: under inetd, stderr is the connection too. Exit status 0.
"""

from __future__ import annotations

import os
import sys

LINES = (
    ("client address  (%a)", "%a"), ("client hostname (%n)", "%n"), ("client username (%u)", "%u"),
    ("client info     (%c)", "%c"), ("server address  (%A)", "%A"), ("server hostname (%N)", "%N"),
    ("server process  (%d)", "%d"), ("server info     (%s)", "%s"),
)


def main() -> int:
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
