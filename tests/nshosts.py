"""Ask glibc and our resolver the same name and address questions about one /etc/hosts, in a private mount
namespace (so /etc/hosts is the test's own and DNS points at a closed loopback port).

Started as `unshare -m PYTHON tests/nshosts.py SPEC.json OUT.json` by `ask_both`. glibc is asked through
Python's socket module, which calls it directly: getaddrinfo(name, family, AI_CANONNAME) for a name,
getnameinfo(address, NI_NAMEREQD) for an address. Ours is pywrap.resolver.Resolver's forward and reverse.
Each answer is written in one form for both: {"canonical": NAME, "addresses": [sorted "ADDR"...]},
{"name": NAME}, or null when there is none. A "verify" question is the reference's double-reverse check of
a client socket address (a %scope is its sin6_scope_id): Debian's own, libwrap's sock_hostname through
ctypes, against our endpoint_name, as {"name": NAME, "warnings": [its syslog lines]}.

SPEC: {"hosts": "...", "queries": [{"name": "x.test", "family": 4 | 6 | null} | {"address": "fe80::1"} |
                                    {"verify": "fe80::1%lo"}]}
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}


def glibc_forward(name: str, family: int | None) -> dict | None:
    try:
        infos = socket.getaddrinfo(name.encode("latin-1"), None, FAMILIES[family], socket.SOCK_STREAM, 0,
                                   socket.AI_CANONNAME)
    except OSError:
        return None
    return {"canonical": infos[0][3], "addresses": sorted(info[4][0] for info in infos)}


def glibc_reverse(address: str) -> dict | None:
    sockaddr = (address, 0, 0, 0) if ":" in address else (address, 0)
    try:
        return {"name": socket.getnameinfo(sockaddr, socket.NI_NAMEREQD)[0]}
    except OSError:
        return None


def ours_forward(resolver, name: str, family: int | None) -> dict | None:
    found = resolver.forward(name, None if family is None else FAMILIES[family])
    if found is None:
        return None
    canonical, addresses = found
    return {"canonical": canonical, "addresses": sorted(socket.inet_ntop(f, p) for f, p in addresses)}


def ours_reverse(resolver, address: str) -> dict | None:
    """Our resolver takes no scope (getnameinfo looks the address up without it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    name = resolver.reverse(family, socket.inet_pton(family, address.partition("%")[0]))
    return None if name is None else {"name": name}


REQUEST_SIZE, CLIENT, HOSTNAME_METHOD, HOSTADDR_METHOD = 872, 272, 840, 848  # libwrap.md §1
RQ_CLIENT_SIN = 6


def sockaddr(text: str) -> bytes:
    """The struct sockaddr_in or sockaddr_in6 (with its scope id) getaddrinfo makes of a numeric address."""
    info = socket.getaddrinfo(text, None, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0]
    if info[0] == socket.AF_INET:
        return struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_pton(socket.AF_INET, info[4][0]))
    packed = socket.inet_pton(socket.AF_INET6, info[4][0].partition("%")[0])
    return struct.pack("=HHI16sI", socket.AF_INET6, 0, 0, packed, info[4][3])


def debian_verify(library: ctypes.CDLL, log, text: str) -> dict:
    """request_init(RQ_CLIENT_SIN), sock_methods, eval_hostname: tcpd's name check of a client."""
    address = ctypes.create_string_buffer(sockaddr(text))
    request = ctypes.create_string_buffer(REQUEST_SIZE)
    library.request_init(request, ctypes.c_int(RQ_CLIENT_SIN), address, ctypes.c_int(0))
    for offset, method in ((HOSTNAME_METHOD, library.sock_hostname), (HOSTADDR_METHOD, library.sock_hostaddr)):
        ctypes.c_void_p.from_buffer(request, offset).value = ctypes.cast(method, ctypes.c_void_p).value
    library.eval_hostname.restype = ctypes.c_char_p
    name = library.eval_hostname(ctypes.c_void_p(ctypes.addressof(request) + CLIENT))
    return {"name": name.decode("latin-1"), "warnings": [entry["text"] for entry in log.collect()]}


def ours_verify(resolver, text: str) -> dict:
    from pywrap.numeric import scope_id
    from pywrap.resolver import endpoint_name, parse_numeric

    warnings: list[str] = []
    name = endpoint_name(resolver, parse_numeric(text), lambda w: warnings.append(f"warning: {w}"),
                         scope_id(text) or 0)
    return {"name": name, "warnings": warnings}


def answer(resolver, query: dict, library: ctypes.CDLL, log) -> dict:
    if "verify" in query:
        return {"glibc": debian_verify(library, log, query["verify"]), "ours": ours_verify(resolver, query["verify"])}
    if "name" in query:
        return {"glibc": glibc_forward(query["name"], query.get("family")),
                "ours": ours_forward(resolver, query["name"], query.get("family"))}
    return {"glibc": glibc_reverse(query["address"]), "ours": ours_reverse(resolver, query["address"])}


def main(spec_path: str, out_path: str) -> int:
    from nsrunner import SyslogCollector, private_dev, private_etc
    from sandbox import DEFAULT_ETC

    from pywrap.resolver import Resolver

    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    root = tempfile.mkdtemp(prefix="pywrap-hosts-", dir=os.path.dirname(spec_path))
    private_etc(root, {**DEFAULT_ETC, "hosts": spec["hosts"]})
    log = SyslogCollector(private_dev(root))  # the library's warnings, never the machine's syslog
    library = ctypes.CDLL("libwrap.so.0")
    resolver = Resolver("/etc/hosts")
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump([answer(resolver, query, library, log) for query in spec["queries"]], f)
    return 0


def ask_both(hosts: str, queries: list[dict]) -> list[dict]:
    """{"glibc": ..., "ours": ...} for each query, with `hosts` as /etc/hosts (latin-1 text)."""
    with tempfile.TemporaryDirectory(prefix="pywrap-hosts-") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump({"hosts": hosts, "queries": queries}, f)
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__, spec_path,
                               out_path], capture_output=True, text=True, timeout=300, cwd=HERE)
        if proc.returncode != 0:
            raise RuntimeError(f"nshosts failed ({proc.returncode}): {proc.stderr[-4000:]}")
        with open(out_path, encoding="utf-8") as f:
            return json.load(f)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
