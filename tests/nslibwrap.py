"""Ask Debian's libwrap itself and ours the same hosts_ctl() questions, in a private mount namespace.

Started as `unshare -m PYTHON tests/nslibwrap.py SPEC.json OUT.json` by `hosts_ctl_both`. The namespace gets
the sandbox's private /etc (netgroups from files) and a private /dev/log (the library's warnings go there,
never to the machine's syslog). Debian's hosts_ctl (libwrap.so.0, through ctypes) runs in a forked child per
call, with its table pointers set and `dry_run` on, so no option can act on this process; ours is
pywrap.hosts_ctl with the same tables. hosts_ctl makes no DNS or ident lookups in either.

SPEC: {"cases": [{"files": {"hosts.allow": "..."}, "call": [daemon, client_name, client_addr, user]}]}, None
in a call being "unknown" (Debian's library crashes on a NULL, so it gets the word).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def debian_hosts_ctl(library: ctypes.CDLL, tables: tuple[str, str], call: list[str | None]) -> bool | str:
    """Debian's verdict, or "exited" when its hosts_ctl ended the calling process."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: Debian's library keeps state and may act on its process
        try:
            os.close(read)
            buffers = [ctypes.create_string_buffer(path.encode()) for path in tables]
            for name, buffer in zip(("hosts_allow_table", "hosts_deny_table"), buffers, strict=True):
                ctypes.c_void_p.in_dll(library, name).value = ctypes.addressof(buffer)
            ctypes.c_int.in_dll(library, "dry_run").value = 1
            args = [(value if value is not None else "unknown").encode("latin-1") for value in call]
            os.write(write, b".")  # inside hosts_ctl from here: if the process ends there, it says so
            os.write(write, b"1" if library.hosts_ctl(*args) else b"0")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        answer = f.read()
    os.waitpid(pid, 0)
    if answer == b".":
        return "exited"  # the library ended the process (percent_x's exit(0) after an over-long expansion)
    if answer not in (b".0", b".1"):
        raise RuntimeError(f"Debian's hosts_ctl{tuple(call)} gave no answer")
    return answer == b".1"


def main(spec_path: str, out_path: str) -> int:
    from nsrunner import private_dev, private_etc, write_case_files
    from sandbox import DEFAULT_ETC

    from pywrap.libwrap import hosts_ctl

    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    root = tempfile.mkdtemp(prefix="pywrap-libwrap-", dir=os.path.dirname(spec_path))
    private_etc(root, DEFAULT_ETC)
    private_dev(root)  # the library's syslog lines land on this socket, unread
    library = ctypes.CDLL("libwrap.so.0")
    results = []
    for n, case in enumerate(spec["cases"]):
        directory = os.path.join(root, f"case{n}")
        os.mkdir(directory)
        write_case_files(directory, case.get("files", {}), {})
        tables = (os.path.join(directory, "hosts.allow"), os.path.join(directory, "hosts.deny"))
        call = case["call"]
        results.append({"reference": debian_hosts_ctl(library, tables, call),
                        "ours": hosts_ctl(*call, tables=tables)})
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


def hosts_ctl_both(cases: list[dict]) -> list[dict]:
    """{"reference": granted (or "exited": Debian's library ended the process), "ours": granted} for each case."""
    with tempfile.TemporaryDirectory(prefix="pywrap-libwrap-") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump({"cases": cases}, f)
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__, spec_path,
                               out_path], capture_output=True, text=True, timeout=600, cwd=HERE)
        if proc.returncode != 0:
            raise RuntimeError(f"nslibwrap failed ({proc.returncode}): {proc.stderr[-4000:]}")
        with open(out_path, encoding="utf-8") as f:
            return json.load(f)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
