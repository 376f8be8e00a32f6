"""Run an installed tcpd for real connections, as any uid, inside a private mount namespace (table-cache tests).

Started as `unshare -m --propagation private PYTHON tests/cachens.py SPEC.json OUT.json` (see
test_tablecache_users.py). Inside: a private /dev whose /dev/log lines are collected; then SPEC's steps, in
order, each giving one result:

- {"mount": "ro", "path": P}: P bind-mounted read-only onto itself.
- {"mount": "full", "path": P}: a 4 KiB tmpfs on P, laid out as `make install` lays out CACHE_DIR (mode
  0755, `users` 1733), then filled up to the last byte.
- {"connect": {"uid": U, "gid": G, "source": "127.0.0.x"}}: a loopback TCP connection from the source
  address, whose accepted socket is fds 0-2 of `PREFIX/sbin/tcpd in.fingerd`, run as U:G (setpriv, no
  supplementary groups, empty environment); the result is what the client received, tcpd's exit status
  and the syslog lines of that one process.
- {"shell": CMD, "uid": U, "gid": G}: `sh -c CMD` as U:G; the result is its exit status and output.

Every mount is gone with the namespace; nothing outside the spec's temporary directories is changed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile

from nsrunner import SyslogCollector, private_dev


def as_user(uid: int, gid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", "env", "-i"]


def connect(prefix: str, uid: int, gid: int, source: str, log: SyslogCollector) -> dict:
    log.collect()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.socket()
        client.bind((source, 0))
        client.connect(listener.getsockname())
        conn, _ = listener.accept()
    with client, conn:
        proc = subprocess.Popen([*as_user(uid, gid), os.path.join(prefix, "sbin", "tcpd"), "in.fingerd"],
                                stdin=conn, stdout=conn, stderr=conn, cwd="/")
        conn.close()
        client.settimeout(30)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        status = proc.wait(timeout=30)
    return {"received": received.decode("latin-1"), "status": status,
            "log": [entry["text"] for entry in log.collect() if entry["ident"] == "in.fingerd"]}


def mount(kind: str, path: str) -> dict:
    if kind == "ro":
        subprocess.run(["mount", "--bind", path, path], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", path], check=True)
    else:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k,mode=0755", "tmpfs", path], check=True)
        users = os.path.join(path, "users")
        os.mkdir(users)
        os.chmod(users, 0o1733)
        filler = os.open(os.path.join(path, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(filler, b"\0" * 512):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(filler)
    return {"mounted": kind}


def main(spec_path: str, out_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    root = tempfile.mkdtemp(prefix="pywrap-cachens-", dir=spec["workdir"])  # removed by the caller
    log = SyslogCollector(private_dev(root))
    results = []
    for step in spec["steps"]:
        if "mount" in step:
            results.append(mount(step["mount"], step["path"]))
        elif "connect" in step:
            c = step["connect"]
            results.append(connect(spec["prefix"], c["uid"], c["gid"], c.get("source", "127.0.0.1"), log))
        else:
            proc = subprocess.run([*as_user(step["uid"], step["gid"]), "sh", "-c", step["shell"]],
                                  capture_output=True, text=True, cwd="/", timeout=60)
            results.append({"status": proc.returncode, "output": proc.stdout + proc.stderr})
    with open(out_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
