"""inetd.conf (and xinetd.conf): which services run through tcpd, as tcpdmatch and tcpdchk judge it.

Contract: `read_inetd_conf(path, diag, real_daemon_dir)` reads a netkit/openbsd-inetd or inetutils style
file (the only format the reference knows, judged exactly as it does) — or, beyond the reference, an
xinetd.conf with its includes — and returns an `InetConf` mapping process names to WRAPPED, NOT_WRAPPED or
MAYBE, emitting the reference's warnings (missing or non-executable programs, tcpd calling itself, insecure
services, ...) with `<file>, line <n>:` context. `check_path` is the reference's world-writable walk.
"""

from __future__ import annotations

import os
import stat

from pywrap.diag import Diagnostics
from pywrap.tables import logical_lines
from pywrap.text import fold, same

WHITESPACE = " \t\r\n"


class Wrap:
    """How a service is run (plain strings: enum and dataclasses would cost tcpdmatch ~10 ms of start-up)."""

    UNKNOWN = "unknown"
    WRAPPED = "wrapped"
    NOT_WRAPPED = "not wrapped"
    MAYBE = "maybe"


class InetConf:
    def __init__(self, path: str | None) -> None:
        self.path = path                       # the file used, None when there was none
        self.status: dict[str, str] = {}       # folded process name -> a Wrap value

    def set(self, name: str, wrap: str) -> None:
        self.status[fold(name)] = wrap

    def get(self, name: str) -> str:
        return self.status.get(fold(name), Wrap.UNKNOWN)


def check_path(path: str, diag: Diagnostics) -> os.stat_result:
    """stat(path) and warn about world-writable components, walking up an absolute path's parents.
    Raises OSError like stat when the path or a parent cannot be stat'ed."""
    st = os.stat(path)
    if st.st_mode & stat.S_IWOTH:
        diag.warning(f"{path}: world writable")
    if path.startswith("/") and path != "/":
        parent = path.rsplit("/", 1)[0] or "/"
        check_path(parent, diag)
    return st


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _not_found(diag: Diagnostics, path: str, e: OSError, where: str = "") -> None:
    diag.warning(f"{path}: not found{where}: {os.strerror(e.errno or 0)}")


def _check_program(program: str, diag: Diagnostics, label: str | None = None,
                   where: str = "") -> None:
    try:
        st = check_path(program, diag)
    except OSError as e:
        _not_found(diag, label or program, e, where)
        return
    if not st.st_mode & stat.S_IXUSR:
        diag.warning(f"{program}: not executable")


def _entry(conf: InetConf, diag: Diagnostics, real_daemon_dir: str, protocol: str, path: str,
           arg0: str, arg1: str) -> None:
    name = _basename(arg0) if arg0.startswith("/") else arg0
    base = _basename(path)
    _check_program(path, diag)
    if same(base, "miscd"):
        conf.set(arg0, Wrap.WRAPPED)
        return
    if same(name, "rexd") or same(name, "rpc.rexd"):
        diag.warning(f"{name} may be an insecure service")
    if same(base, "tcpd"):
        if same(name, "tcpd"):
            diag.warning(f"{name} is recursively calling itself")
        wrap = Wrap.WRAPPED
        try:
            st = os.stat(path)
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                diag.warning(f"{path}: file is set-uid or set-gid")
        except OSError:
            pass
        if arg0.startswith("/") and same(name, _basename(arg1)):
            diag.warning(f"{path} inserted before {arg0}")
        if arg0.startswith("/"):
            _check_program(arg0, diag)
        else:
            daemon = f"{real_daemon_dir}/{arg0}"
            _check_program(daemon, diag, label=arg0, where=f" in {real_daemon_dir}")
    else:
        daemon = f"{real_daemon_dir}/{name}"
        if same(path, daemon):
            wrap = Wrap.NOT_WRAPPED
        else:
            try:
                check_path(daemon, diag)
                wrap = Wrap.MAYBE
            except FileNotFoundError:
                wrap = Wrap.NOT_WRAPPED
            except OSError as e:
                diag.warning(f"{daemon}: file lookup: {os.strerror(e.errno or 0)}")
                wrap = Wrap.MAYBE
    if wrap == Wrap.WRAPPED and same(protocol, "rpc/tcp"):
        diag.warning(f"{name}: cannot wrap rpc/tcp services")
    conf.set(name, wrap)


def _parse_line(text: str) -> tuple[str, str, str, str] | str | None:
    """(protocol, path, arg0, arg1) of one line; "incomplete" for the reference's warning; None to skip."""
    tokens = iter(text.replace("\t", " ").replace("\r", " ").replace("\n", " ").split(" "))
    words = (t for t in tokens if t)
    service = next(words, None)
    if service is None or service.startswith("#"):
        return None
    if not (same(service, "stream") or same(service, "dgram")):
        next(words, None)  # the socket type
    protocol = next(words, None) or ""
    next(words, None)  # wait / nowait
    user = next(words, None)
    if user is None:
        return None
    path = user if user.startswith("/") else next(words, None)
    if path is None:
        return None
    if path.startswith("?"):
        path = path[1:]
    if same(path, "internal"):
        return None
    if all(c in "-0123456789" for c in path):  # an RPC version number: the path comes next
        path = next(words, None)
        if path is None:
            return None
    arg0 = next(words, None)
    if arg0 is None:
        return "incomplete"
    if all(c.isdigit() for c in arg0):
        arg0 = next(words, None)
        if arg0 is None:
            return "incomplete"
    return protocol, path, arg0, next(words, None) or ""


def read_inetd_conf(path: str | None, diag: Diagnostics, real_daemon_dir: str,
                    explicit: bool) -> InetConf:
    """Read `path`. An explicit (-i) file that cannot be read raises OSError; the default one is just
    skipped when absent (path None in the result)."""
    if path is None:
        return InetConf(None)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        data = b""  # the reference opens a directory and reads nothing from it
    except OSError:
        if explicit:
            raise
        if os.path.exists(XINETD_CONF):  # no inetd.conf, but xinetd: use that (and say so with -v)
            return read_xinetd_conf(XINETD_CONF, diag, real_daemon_dir)
        return InetConf(None)
    if not explicit:
        try:
            check_path(path, diag)
        except OSError:
            pass
    if looks_like_xinetd(data):
        return read_xinetd_conf(path, diag, real_daemon_dir)
    conf = InetConf(path)
    for logical in logical_lines(data, buffer_size=8192):
        with diag.in_context(path, logical.line):
            parsed = _parse_line(logical.text)
            if parsed == "incomplete":
                diag.warning("incomplete line")
            elif isinstance(parsed, tuple):
                _entry(conf, diag, real_daemon_dir, *parsed)
    return conf


# xinetd ---------------------------------------------------------------------------------------------
XINETD_CONF = "/etc/xinetd.conf"


def looks_like_xinetd(data: bytes) -> bool:
    """xinetd.conf has `service NAME` blocks in braces, `defaults` or `includedir`; inetd.conf has none."""
    words = data.decode("latin-1").split()
    return "{" in words and any(w in ("service", "defaults", "includedir") for w in words)


def read_xinetd_conf(path: str, diag: Diagnostics, real_daemon_dir: str, conf: InetConf | None = None,
                     depth: int = 0) -> InetConf:
    """xinetd.conf with `include` and `includedir`: each enabled service is wrapped when its server is tcpd
    (the daemon is then the first word of server_args) or when xinetd's own libwrap check applies (no
    NOLIBWRAP flag; xinetd asks the tables with the service name)."""
    conf = conf or InetConf(path)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("latin-1")
    except OSError as e:
        diag.warning(f"open {path}: {os.strerror(e.errno or 0)}")
        return conf
    name, block, start = None, {}, 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if name is None and words[0] in ("include", "includedir") and len(words) > 1 and depth < 8:
            targets = [words[1]]
            if words[0] == "includedir":
                try:  # xinetd skips names with a dot or ending in ~ (backup files)
                    targets = [os.path.join(words[1], n) for n in sorted(os.listdir(words[1]))
                               if "." not in n and not n.endswith("~")]
                except OSError as e:
                    with diag.in_context(path, number):
                        diag.warning(f"{words[1]}: {os.strerror(e.errno or 0)}")
                    targets = []
            for target in targets:
                read_xinetd_conf(target, diag, real_daemon_dir, conf, depth + 1)
        elif words[0] in ("service", "defaults") and name is None:
            name, block, start = (words[1] if words[0] == "service" and len(words) > 1 else ""), {}, number
        elif line == "}" and name is not None:
            if name:
                with diag.in_context(path, start):
                    _xinetd_service(conf, diag, name, block)
            name = None
        elif name is not None and line != "{":
            key, _, value = line.partition("=")
            block[key.strip().rstrip("+-").lower()] = value.strip()
    return conf


def _xinetd_service(conf: InetConf, diag: Diagnostics, service: str, block: dict[str, str]) -> None:
    if block.get("disable", "no").lower() == "yes" or "INTERNAL" in block.get("type", "").upper().split():
        return
    server = block.get("server", "")
    if server:
        _check_program(server, diag)
    args = block.get("server_args", "").split()
    if same(_basename(server), "tcpd"):
        if args:
            conf.set(_basename(args[0]), Wrap.WRAPPED)
        return
    libwrap = "NOLIBWRAP" not in block.get("flags", "").upper().split()
    conf.set(service, Wrap.WRAPPED if libwrap else Wrap.NOT_WRAPPED)
    if server and not libwrap:
        conf.set(_basename(server), Wrap.NOT_WRAPPED)
