"""safe_finger: run finger(1) and make its output harmless to show (the `spawn` helper of tcp_wrappers).

Contract, as Debian's safe_finger: drop root (to `nobody`, else uid/gid 65534), run `finger` from a fixed
PATH with the given arguments, and copy its output with every non-printable byte written as a backslash
and three octal digits, backslashes doubled, lines folded at 128 columns with a trailing backslash, and
each line indented by one space; at most 100,000 input bytes, at most 60 seconds. Exit status 0 when finger
exited 0, else 1. `--help` as the only argument (ours: Debian's passes it to finger, which has no such option)
prints the usage and exits 0; with other arguments it goes to finger as before. finger starts with
SIGPIPE and SIGXFSZ at their defaults (the interpreter ignores both; Debian's safe_finger, a C program,
passes on what it was given, which under tcpd is the defaults too).
"""

from __future__ import annotations

import os
import signal
import sys

PATH = "/bin:/usr/bin:/sbin:/usr/sbin"
INPUT_LIMIT = 100_000
TIME_LIMIT = 60
WIDTH = 128
PRINTABLE_SPACE = frozenset(b" \t\r\v\f")

HELP = """usage: {prog} [finger-option ...] [user][@host] ...
Runs finger(1) as nobody with these arguments and shows its output made safe: a non-printable byte as a
backslash and three octal digits, a backslash doubled, every line indented by one space and folded at
128 columns, at most 100000 bytes and 60 seconds. For `spawn` commands in hosts.allow / hosts.deny.
Exit status 0 when finger exited 0, else 1.
"""


def drop_privileges() -> None:
    if os.getuid() != 0 and os.geteuid() != 0:
        return
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        entry = None
    if entry is not None and entry.pw_uid > 0:
        os.setgid(entry.pw_gid)
        os.initgroups("nobody", entry.pw_gid)
        os.setuid(entry.pw_uid)
    else:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)


class Filter:
    """The reference's byte filter, with its column count carried across reads."""

    def __init__(self) -> None:
        self.column = 0

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if byte == 0x0A:
                out.append(byte)
                self.column = 0
                continue
            if self.column >= WIDTH:
                out += b"\\\n"
                self.column = 0
            if self.column == 0:
                out.append(0x20)
                self.column = 1
            if 0x20 <= byte < 0x7F or byte in PRINTABLE_SPACE:
                if byte == 0x5C:
                    out += b"\\\\"
                    self.column += 2
                else:
                    out.append(byte)
                    self.column += 1
            else:
                out += b"\\%03o" % byte
                self.column += 4
        return bytes(out)


def main() -> int:
    if sys.argv[1:] == ["--help"]:  # alone only: with other arguments it is finger's (and fails there)
        os.write(1, HELP.format(prog=os.path.basename(sys.argv[0])).encode())
        return 0
    drop_privileges()
    os.environ["PATH"] = PATH
    for fd in (0, 1, 2):  # the reference opens closed standard descriptors on /dev/null
        try:
            os.fstat(fd)
        except OSError:
            os.open("/dev/null", os.O_RDWR)
    args = [b"finger", *(os.fsencode(a) for a in sys.argv[1:])]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            os.dup2(write_end, 1)
            os.close(read_end)
            os.close(write_end)
            os.execvp("finger", args)
        except OSError as e:
            os.write(2, f"finger: {os.strerror(e.errno or 0)}\n".encode())
        os._exit(1)
    os.close(write_end)

    def timeout(signum, frame):
        os.kill(pid, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGALRM, timeout)
    signal.alarm(TIME_LIMIT)
    text_filter, total = Filter(), 0
    while total < INPUT_LIMIT:
        chunk = os.read(read_end, min(65536, INPUT_LIMIT - total))
        if not chunk:
            break
        total += len(chunk)
        os.write(1, text_filter.feed(chunk))
    if total >= INPUT_LIMIT and os.read(read_end, 1):
        os.write(1, b"\n\n Input truncated to 100000 bytes...\n")
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    signal.alarm(0)
    return 0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
