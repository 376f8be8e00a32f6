"""What hosts_options do in tcpd itself: processes, privileges, the environment, the client's socket.

Contract: `TcpdEffects` implements `pywrap.options.Effects` for a real connection. Differences from Debian's
tcpd, on purpose (README, differences table): `spawn` and `aclexec` run with stdin, stdout and stderr on
/dev/null (Debian's aclexec hands them the client's socket), and `user` / `group` really drop privileges
(setgroups or initgroups, then setgid, then setuid, each checked), where Debian's only checks the names.
Everything else is as the reference does it (../shared/spec/options.md §2). The commands start with the
signal dispositions and mask the program that runs them was given, not the interpreter's: tcpd's
`Handover` (pywrap/tcpd.py) knows them; without one (the library) SIGPIPE and SIGXFSZ, which the
interpreter ignores, are back at their defaults, as subprocess puts them.
"""

from __future__ import annotations

import _signal  # the C module, loaded at start-up (`signal` imports enum)
import _socket as socket  # the C module: `socket` costs ~6 ms of start-up per connection
import os
import struct

from pywrap.banners import banner_bytes
from pywrap.diag import Diagnostics
from pywrap.log import LOG_WARNING, SyslogClient
from pywrap.options import Effects, OptionError
from pywrap.request import Request
from pywrap.text import encode

TYPE_CHECKING = False  # no typing or collections import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from collections.abc import Callable

    from pywrap.tcpd import Handover

SHELL = "/bin/sh"


def default_signals() -> None:
    """SIGPIPE and SIGXFSZ, which the interpreter ignores, back to their defaults (as subprocess does)."""
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)


def run_shell(command: str, signals: Callable[[], None] = default_signals, ignore_sighup: bool = True
              ) -> tuple[int, int]:
    """fork + `/bin/sh -c command` with stdio on /dev/null, `signals()` done and SIGHUP ignored (spawn's,
    not aclexec's, as in the reference); wait. -> (pid, wait status)"""
    pid = os.fork()
    if pid == 0:  # child: never return into tcpd's own code
        try:
            signals()
            if ignore_sighup:
                _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execv(SHELL, [b"sh", b"-c", encode(command)])
        finally:
            os._exit(0)  # the reference's child exits 0 when it cannot run the shell
    _, status = os.waitpid(pid, 0)
    return pid, status


def run_aclexec(command: str, warn: Callable[[str], None],
                signals: Callable[[], None] = default_signals) -> bool:
    """aclexec: run the command; True when it exited 0 (death by a signal is also reported)."""
    pid, status = run_shell(command, signals, ignore_sighup=False)
    if os.WIFSIGNALED(status):
        warn(f"process {pid} exited with signal {os.WTERMSIG(status)}")
        return False
    return os.WEXITSTATUS(status) == 0


class TcpdEffects(Effects):
    def __init__(self, request: Request, diag: Diagnostics, log: SyslogClient, sock: socket.socket | None,
                 refuse: Callable[[], None], handover: Handover) -> None:
        self.request = request
        self.diag = diag
        self.log = log
        self.sock = sock
        self.refuse = refuse            # the exit path, for a twist that cannot run
        self.handover = handover        # fds 0-2 and the signal state for what tcpd runs
        self.allow_severity: int | None = None
        self.deny_severity: int | None = None
        self.ident_timeout: int | None = None
        self.lookup_user: Callable[[], str] | None = None

    def spawn(self, command: str) -> None:
        run_shell(command, self.handover.child)

    def aclexec(self, command: str) -> bool:
        return run_aclexec(command, self.diag.warning, self.handover.child)

    def twist(self, command: str) -> None:
        self.log.log(self.deny_severity or LOG_WARNING, f"twist {self.request.client_info()} to {command}")
        self.log.close()
        try:
            self.handover.hand_over()  # fds 0-2 the client's again, signals as given, no watchdog
            os.dup2(0, 1)
            os.dup2(0, 2)
        except OSError as e:
            self.handover.take_back()
            self.diag.warning(f"twist_option: dup: {os.strerror(e.errno or 0)}")
            self.refuse()
        try:
            os.execv(SHELL, [b"sh", b"-c", encode(command)])
        except OSError as e:
            self.handover.take_back()
            self.diag.warning(f"twist_option: {SHELL}: {os.strerror(e.errno or 0)}")
            self.refuse()

    def severity(self, facility: int | None, level: int) -> None:
        value = level if facility is None else (facility << 3) | level
        self.allow_severity = self.deny_severity = value

    def rfc931(self, timeout: int | None) -> None:
        if timeout is not None:
            self.ident_timeout = timeout
        _ = self.request.user  # look the user up now, as the reference does

    def banners(self, directory: str, request: Request) -> None:
        data = banner_bytes(directory, request, self.diag.warning)
        while data:
            try:
                data = data[os.write(self.handover.client, data):]
            except OSError:
                return

    def nice(self, increment: int) -> None:
        try:
            os.nice(increment)
        except OSError as e:
            self.diag.warning(f"nice({increment}): {os.strerror(e.errno or 0)}")

    def setenv(self, name: str, value: str) -> None:
        os.environb[encode(name)] = encode(value)

    def umask(self, mask: int) -> None:
        os.umask(mask)

    def group(self, gid: int, name: str) -> None:
        _checked(f"setgroups({name})", os.setgroups, [])
        _checked(f"setgid({name})", os.setgid, gid)

    def user(self, uid: int, gid: int | None, name: str) -> None:
        if gid is None:  # no .group: the user's own group and supplementary groups
            import pwd

            primary = pwd.getpwuid(uid).pw_gid
            _checked(f"initgroups({name})", os.initgroups, name, primary)
            _checked(f"setgid({name})", os.setgid, primary)
        else:
            _checked(f"setgroups({name})", os.setgroups, [])
            _checked(f"setgid({name})", os.setgid, gid)
        _checked(f"setuid({name})", os.setuid, uid)

    def keepalive(self) -> None:
        set_keepalive(self.sock, self.diag.warning)

    def linger(self, seconds: int) -> None:
        set_linger(self.sock, seconds, self.diag.warning)


def set_keepalive(sock: socket.socket | None, warn: Callable[[str], None]) -> None:
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError as e:
        warn(f"setsockopt SO_KEEPALIVE: {os.strerror(e.errno or 0)}")


def set_linger(sock: socket.socket | None, seconds: int, warn: Callable[[str], None]) -> None:
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", seconds != 0, seconds))
    except OSError as e:
        warn(f"setsockopt SO_LINGER {seconds}: {os.strerror(e.errno or 0)}")


def _checked(what: str, call, *args) -> None:
    try:
        call(*args)
    except OSError as e:
        raise OptionError(f"{what}: {os.strerror(e.errno or 0)}") from None
