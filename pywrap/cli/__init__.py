"""Command-line front ends: tcpdmatch (and, later, tcpdchk, try-from, safe_finger)."""
