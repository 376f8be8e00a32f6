"""Where the tests find Debian's programs.

Debian's tcpd, tcpdmatch, tcpdchk, try-from, safe_finger and socat are installed (they start no service).
openbsd-inetd, dnsmasq and oidentd are not: installing them would start services on the machine, and
openbsd-inetd would displace an xinetd the admin runs. `make` unpacks them into build/debian/root instead
(tools/debian_parts.py), and the tests run them from there by path.
"""

from __future__ import annotations

import os

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNPACKED = os.path.join(CHECKOUT, "build", "debian", "root")


def unpacked(path: str) -> str:
    """The unpacked copy of Debian's `path` (e.g. /usr/sbin/inetd); says how to get it when missing."""
    found = os.path.join(UNPACKED, path.lstrip("/"))
    if not os.access(found, os.X_OK):
        raise FileNotFoundError(f"{found} is missing: run `make test` (tools/debian_parts.py unpacks it)")
    return found


INETD = unpacked("/usr/sbin/inetd")
DNSMASQ = unpacked("/usr/sbin/dnsmasq")
OIDENTD = unpacked("/usr/sbin/oidentd")
