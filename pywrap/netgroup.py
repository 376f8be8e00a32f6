"""@netgroup membership through libc's innetgr(3), the way the reference asks it.

Contract: `innetgr(group, host)` -> bool, using the NIS domain the reference would pass (the system's
domain name, or none when it is unset). Group names are case-sensitive; host comparison is libc's.
ctypes and libc are loaded on first use only: most rule sets have no netgroups.
"""

from __future__ import annotations

import functools


@functools.cache
def _libc():
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.innetgr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    libc.innetgr.restype = ctypes.c_int
    return libc, ctypes


@functools.cache
def _nis_domain() -> bytes | None:
    """yp_get_default_domain: the domain name, unless it is unset ("" or "(none)")."""
    libc, ctypes = _libc()
    buf = ctypes.create_string_buffer(256)
    if libc.getdomainname(buf, len(buf)) != 0:
        return None
    name = buf.value
    return None if name in (b"", b"(none)") else name


def innetgr(group: str, host: str) -> bool:
    libc, _ = _libc()
    try:
        g, h = group.encode("latin-1"), host.encode("latin-1")
    except UnicodeEncodeError:
        return False
    if b"\0" in g or b"\0" in h:
        return False
    return bool(libc.innetgr(g, h, None, _nis_domain()))


def netgroup_has_members(group: str) -> bool:
    """setnetgrent + getnetgrent: does the group exist and list at least one triple? (tcpdchk's check)"""
    libc, ctypes = _libc()
    try:
        g = group.encode("latin-1")
    except UnicodeEncodeError:
        return False
    if b"\0" in g:
        return False
    host, user, domain = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_char_p()
    libc.setnetgrent(g)
    try:
        return libc.getnetgrent(ctypes.byref(host), ctypes.byref(user), ctypes.byref(domain)) != 0
    finally:
        libc.endnetgrent()
