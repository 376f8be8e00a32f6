"""tcpd: the front end inetd runs for each connection. Decide, log, then exec the real daemon or refuse.

Contract: `launched(argv)` with argv = [launcher path, STDIO, IGNORED, argv[0] as inetd gave it,
arguments...] is what the native launcher (launcher/tcpd.c) calls: fds 0-2 are /dev/null while Python
runs, STDIO says where the launcher kept the real ones ("3,3,3", -1 for a closed one), IGNORED the signals
that were ignored when it started (hex, bit n-1 for signal n). `main(argv)`, argv = [launcher path, argv[0],
arguments...], is an older launcher's entry (a copy of sbin/tcpd made before, as the easy install makes),
with fds 0-2 in place. Neither returns. It follows ../shared/spec/tcpd.md: the daemon's name and path
come from argv[0] (absolute: that program; otherwise REAL_DAEMON_DIR/argv[0]); when argv[0] is `tcpd`
itself the daemon is taken from argv[1] (tcpserver, systemd-socket-activate), and tcpd never execs itself.
The client and server come from fd 0 (a connection passed the systemd way, LISTEN_FDS and fd 3, is
first moved there: endpoints.take_listen_fds); the rules decide; syslog gets the reference's lines; a refusal
consumes a pending datagram, pauses and exits 0; a grant execs the daemon with fds 0-2 as the launcher got
them, and with the signal dispositions and mask it got (`Handover`). Nothing is ever written to fds 0-2.
Any failure denies, is logged (when syslog can be reached at all), pauses as a refusal does, and exits 1;
so does a connection not decided within settings.WATCHDOG seconds (the watchdog).
"""

from __future__ import annotations

import _signal  # the C module, loaded by the interpreter at start-up: free (`signal` imports enum)
import os
import sys
import time

from pywrap import settings
from pywrap.log import (
    LOG_ERR,
    LOG_INFO,
    LOG_NOTICE,
    LOG_WARNING,
    SyslogClient,
    SyslogDiagnostics,
    verdict_line,
)
from pywrap.text import encode, truncate

TYPE_CHECKING = False  # no `typing` import at run time: start-up is paid per connection
if TYPE_CHECKING:
    from typing import NoReturn

EXIT_REFUSED = 0       # a refusal by the rules: the reference's exit status
EXIT_FAILURE = 1       # anything that went wrong: deny, log, and say so in the status too
CPU_GRACE = 1          # CPU seconds past WATCHDOG after which SIGPROF (default action: terminate) ends a
                       # process whose SIGALRM handler cannot run: a loop in C, or no memory left to call it


class Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Watchdog(BaseException):
    """SIGALRM after settings.WATCHDOG seconds. Not an Exception: nothing on the way may hold it."""


def _expired(signum: int, frame) -> NoReturn:
    where = ""
    while frame is not None:  # the innermost of pywrap's own functions says what tcpd was waiting for
        module = frame.f_globals.get("__name__", "")
        if module.startswith("pywrap."):
            where = f" (in {module}.{frame.f_code.co_name})"
            break
        frame = frame.f_back
    raise Watchdog(f"no decision within {settings.WATCHDOG} seconds{where}")


class Handover:
    """What the programs tcpd runs get from the launcher, held back from the interpreter until then.

    `stdio`: where the launcher kept fds 0, 1 and 2 (None: closed); while Python runs, fds 0-2 are /dev/null
    and `client` is where the client's fd 0 is. `ignored`: the signals ignored when the launcher started
    (bit n-1 for signal n). The interpreter ignores SIGPIPE and SIGXFSZ itself, and the watchdog catches
    SIGALRM (unblocked while it runs). `child()` gives a forked child, before it execs a command, the
    dispositions and mask of those three as the launcher found them; `hand_over()` does that, stops the
    watchdog and puts fds 0-2 back, before tcpd execs the daemon or a twist command; `take_back()` undoes it
    when that exec failed. `in_place()` (an older launcher, try-from): fds 0-2 are the client's already,
    and the signals are taken to have been at their defaults, as subprocess takes them."""

    RESTORED = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGALRM)
    IN_PLACE = [0, 1, 2]

    def __init__(self, stdio: list[int | None], ignored: int = 0) -> None:
        self.stdio = stdio
        self.ignored = ignored
        self.alarm_blocked = False
        for fd in stdio:
            if fd is not None and fd > 2:
                os.set_inheritable(fd, False)  # the daemon gets them as fds 0-2, and nothing else gets them

    @classmethod
    def from_launcher(cls, stdio: str, ignored: str) -> Handover:
        return cls([None if fd < 0 else fd for fd in map(int, stdio.split(","))], int(ignored, 16))

    @classmethod
    def in_place(cls) -> Handover:
        return cls(list(cls.IN_PLACE))

    @property
    def client(self) -> int:
        """The client's fd 0 (-1 when it was closed: any use of it fails with EBADF, as fd 0's would)."""
        fd = self.stdio[0]
        return -1 if fd is None else fd

    # the watchdog ----------------------------------------------------------------------------------
    def arm(self, seconds: float) -> None:
        if seconds <= 0:
            return
        _signal.signal(_signal.SIGALRM, _expired)
        was = _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [_signal.SIGALRM])
        self.alarm_blocked = _signal.SIGALRM in was
        _signal.setitimer(_signal.ITIMER_REAL, seconds)
        _signal.setitimer(_signal.ITIMER_PROF, seconds + CPU_GRACE)

    @staticmethod
    def stop() -> None:
        """No SIGALRM any more: tcpd has decided. (The CPU bound stays until exit or exec.)"""
        _signal.setitimer(_signal.ITIMER_REAL, 0)

    # before an exec --------------------------------------------------------------------------------
    def child(self) -> None:
        for sig in self.RESTORED:
            _signal.signal(sig, _signal.SIG_IGN if self.ignored >> (sig - 1) & 1 else _signal.SIG_DFL)
        if self.alarm_blocked:
            _signal.pthread_sigmask(_signal.SIG_BLOCK, [_signal.SIGALRM])

    def hand_over(self) -> None:
        self.stop()
        _signal.setitimer(_signal.ITIMER_PROF, 0)  # interval timers outlive exec
        self.child()
        self.put_back(0, 1, 2)

    def take_back(self) -> None:
        for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
            _signal.signal(sig, _signal.SIG_IGN)
        self.null(0, 1, 2)

    # fds 0-2 ---------------------------------------------------------------------------------------
    def put_back(self, *fds: int) -> None:
        for fd in fds:
            kept = self.stdio[fd]
            if kept is None:
                try:
                    os.close(fd)
                except OSError:
                    pass
            elif kept != fd:
                os.dup2(kept, fd)

    def null(self, *fds: int) -> None:
        """/dev/null on these of fds 0-2 again (best effort: under EMFILE they stay as they are)."""
        fds = tuple(fd for fd in fds if self.stdio[fd] != fd)
        if not fds:
            return
        try:
            null = os.open(os.devnull, os.O_RDWR)
        except OSError:
            return
        for fd in fds:
            if fd != null:
                os.dup2(null, fd)
        if null not in fds:
            os.close(null)

    def keep(self, *fds: int) -> None:
        """These of fds 0-2, one open file now (a connection endpoints.take_listen_fds moved there), kept
        above 2 in place of what was kept for them; /dev/null in their place."""
        kept = os.dup(fds[0])  # not inheritable; above 2, since fds 0-2 are all open here
        old = {self.stdio[fd] for fd in fds}
        for fd in fds:
            self.stdio[fd] = kept
        for fd in old - set(self.stdio) - {None}:
            os.close(fd)
        self.null(*fds)


def daemon_and_path(args: list[str]) -> tuple[str, str, list[str]]:
    """(daemon name, program to exec, its argv) from tcpd's own argv."""
    if args and os.path.basename(args[0]) == "tcpd" and len(args) > 1:
        args = args[1:]  # run as `tcpd /usr/sbin/in.fingerd ...` (tcpserver, systemd socket units)
    first = args[0]
    if first.startswith("/"):
        name = first.rsplit("/", 1)[-1]
        return name, first, [name, *args[1:]]
    return first, f"{settings.REAL_DAEMON_DIR}/{first}", list(args)


class Tcpd:
    def __init__(self, launcher: str, args: list[str], handover: Handover | None = None) -> None:
        self.launcher = launcher
        self.handover = handover or Handover.in_place()
        self.original_argv0 = args[0]
        self.daemon, self.path, self.exec_argv = daemon_and_path(args)
        self.log = SyslogClient(truncate(self.daemon))
        self.diag = SyslogDiagnostics(self.log)
        self.discovery = None
        self.effects = None
        self.request = None

    # exit paths -------------------------------------------------------------------------------
    def clean_exit(self, status: int) -> NoReturn:
        """The reference's exit path: consume a pending datagram, pause (against respawn storms), exit."""
        self.pause()
        raise Exit(status)

    def pause(self) -> None:
        self.handover.stop()  # decided: the watchdog must not turn a refusal into a failure
        sock = self.discovery.sock if self.discovery else None
        if sock is not None and self.discovery.sink:
            try:
                sock.settimeout(1.0)
                sock.recv(8192)
            except OSError:
                pass
        time.sleep(settings.REFUSE_PAUSE)

    def refuse(self, status: int = EXIT_REFUSED) -> NoReturn:
        severity = (self.effects.deny_severity if self.effects else None) or LOG_WARNING
        self.log.log(severity, verdict_line(self.request, granted=False))
        self.clean_exit(status)

    # the connection ---------------------------------------------------------------------------
    def run(self) -> NoReturn:
        from pywrap.endpoints import discover

        os.umask(0o022)
        if "LISTEN_PID" in os.environ:  # systemd's fd 3 onto fds 0 and 1
            problem = self.take_listen_fds()
            if problem:
                self.diag.error(problem)
                self.clean_exit(EXIT_FAILURE)
        self.discovery = discover(self.handover.client, self.diag)
        if self.discovery.sock is None:  # not a socket at all: the reference's IP-option check fails here
            self.log.log(LOG_ERR, f"getpeername: {self.discovery.error}")
            self.clean_exit(EXIT_REFUSED)
        self.request = self.build_request()
        self.check_ip_options()
        if settings.PARANOID and self.request.client.name == "paranoid":
            self.refuse()  # the reference's PARANOID build: a name that does not verify is refused at once
        if self.is_self(self.path):
            self.diag.error(f"{self.path} is this tcpd itself; refusing to run it (set REAL_DAEMON_DIR, or "
                            f"give the daemon as tcpd's first argument)")
            self.clean_exit(EXIT_FAILURE)
        verdict = self.decide()
        if not verdict.granted:
            self.refuse(EXIT_FAILURE if verdict.failed else EXIT_REFUSED)
        self.grant()

    def take_listen_fds(self) -> str | None:
        """endpoints.take_listen_fds works on fds 0 and 1 themselves: the client's fd 0 is put there for it,
        and the connection it moves onto fds 0 and 1 is kept for the daemon like the launcher's fds."""
        from pywrap.endpoints import take_listen_fds

        handover = self.handover
        if handover.stdio == Handover.IN_PLACE:
            return take_listen_fds(os.environ)
        handover.put_back(0)
        try:
            problem = take_listen_fds(os.environ)
            if "LISTEN_PID" not in os.environ:  # moved
                handover.keep(0, 1)
        finally:
            handover.null(0)
        return problem

    def build_request(self):
        from pywrap.request import Endpoint, Request

        resolvers: list = []  # one Resolver for both ends, made (and imported) by the first name lookup
        discovery = self.discovery

        def lookup(endpoint: Endpoint) -> str:
            from pywrap.numeric import scope_id
            from pywrap.resolver import Resolver, endpoint_name

            if not resolvers:
                resolvers.append(Resolver(report=self.diag.warning))
            # a link-local peer's scope (fe80::1%eth0): no forward answer carries one, so it never verifies
            scope = scope_id(endpoint.address) or 0
            return endpoint_name(resolvers[0], endpoint.sockaddr, self.diag.warning, scope)

        def endpoint(side) -> Endpoint:
            if side is None:
                return Endpoint()
            sockaddr = None if side.packed is None else (side.family, side.packed)
            return Endpoint(side.address, side.port, sockaddr, lookup)

        def user(request: Request) -> str:
            if discovery.sink or discovery.client is None or discovery.server is None:
                return "unknown"
            from pywrap.ident import ident_user  # only when a rule or expansion asks for the user
            timeout = (self.effects.ident_timeout if self.effects else None) or settings.RFC931_TIMEOUT
            return ident_user(discovery.client, discovery.server, timeout)

        return Request(truncate(self.daemon), endpoint(discovery.client), endpoint(discovery.server),
                       os.getpid(), user_lookup=user)

    def check_ip_options(self) -> None:
        """KILL_IP_OPTIONS: refuse source-routed IPv4 connections, log and clear other IP options."""
        import _socket as socket  # not `socket`: its import costs more than this whole check

        from pywrap.endpoints import has_source_route, option_bytes, read_ip_options

        sock = self.discovery.sock
        if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
            return
        try:
            options = read_ip_options(sock)
        except OSError as e:
            self.log.log(LOG_ERR, f"getpeername: {os.strerror(e.errno or 0)}")
            self.clean_exit(EXIT_REFUSED)
        if not options:
            return
        client = self.request.client_info()
        if has_source_route(options):
            self.log.log(LOG_WARNING, f"refused connect from {client} with IP source routing options")
            sock.shutdown(socket.SHUT_RDWR)
            return
        self.log.log(LOG_NOTICE, f"connect from {client} with IP options (ignored):{option_bytes(options)}")
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"")
        except OSError as e:
            self.log.log(LOG_ERR, f"setsockopt IP_OPTIONS NULL: {os.strerror(e.errno or 0)}")
            sock.shutdown(socket.SHUT_RDWR)

    def is_self(self, path: str) -> bool:
        try:
            mine, target = os.stat(self.launcher), os.stat(path)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (target.st_dev, target.st_ino)

    def decide(self):
        from pywrap.access import decide

        def build():
            from pywrap.effects import TcpdEffects

            return TcpdEffects(self.request, self.diag, self.log, self.discovery.sock,
                               lambda: self.clean_exit(EXIT_REFUSED), self.handover)

        self.effects = EffectsWhenNeeded(build)
        try:
            return decide(self.request, self.diag, self.effects, settings.HOSTS_ALLOW, settings.HOSTS_DENY)
        except Exception as e:
            expand = sys.modules.get("pywrap.expand")  # only options and banners expand, and import it
            if expand is None or not isinstance(e, expand.ExpansionTooLong):
                raise
            self.clean_exit(EXIT_REFUSED)  # logged where it happened; the reference exits without a verdict

    def grant(self) -> NoReturn:
        severity = self.effects.allow_severity or LOG_INFO
        self.log.log(severity, verdict_line(self.request, granted=True))
        self.log.close()
        try:
            self.handover.hand_over()  # fds 0-2, signals and mask as the launcher got them; no watchdog
            os.execv(encode(self.path), [encode(a) for a in self.exec_argv])
        except OSError as e:
            self.handover.take_back()
            # logged after closelog in the reference, so under libc's default ident: the program's short name
            after = SyslogClient(os.path.basename(self.original_argv0), self.log.facility)
            after.log(LOG_ERR, f"error: cannot execute {self.path}: {os.strerror(e.errno or 0)}")
            self.log = after
            self.clean_exit(EXIT_FAILURE)
        raise AssertionError("unreachable")


class EffectsWhenNeeded:
    """Stands in for TcpdEffects until a matched rule has options: only then is it built, and its modules
    (options, expand, banners) imported, which most connections never need. Before that, the settings
    options could have changed read as unset."""

    def __init__(self, build) -> None:
        self._build = build
        self._real = None

    def __getattr__(self, name: str):  # what the class does not define: the option methods
        if self._real is None:
            self._real = self._build()
        return getattr(self._real, name)

    @property
    def allow_severity(self) -> int | None:
        return None if self._real is None else self._real.allow_severity

    @property
    def deny_severity(self) -> int | None:
        return None if self._real is None else self._real.deny_severity

    @property
    def ident_timeout(self) -> int | None:
        return None if self._real is None else self._real.ident_timeout


def _silence_stdio() -> None:
    """Python must never write to fds 0-2 (the client's socket): send its own streams to /dev/null."""
    null = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    sys.stdout = sys.stderr = null


def launched(argv: list[str]) -> NoReturn:
    """The native launcher's entry: argv = [launcher path, STDIO, IGNORED, argv[0], arguments...]."""
    _run(argv[:1] + argv[3:], lambda: Handover.from_launcher(argv[1], argv[2]))


def main(argv: list[str]) -> NoReturn:
    """An older launcher's entry: argv = [launcher path, argv[0], arguments...], fds 0-2 in place."""
    _silence_stdio()
    _run(argv, Handover.in_place)


def _run(argv: list[str], make_handover) -> NoReturn:
    status, handover, tcpd = EXIT_FAILURE, None, None
    try:
        handover = make_handover()
        handover.arm(settings.WATCHDOG)
        args = [os.fsencode(a).decode("latin-1") for a in argv]
        if len(args) < 2:
            raise Failure("error: started without a program name")
        tcpd = Tcpd(args[0], args[1:], handover)
        tcpd.run()
    except Exit as e:
        status = e.status
    except BaseException as e:  # fail closed: whatever went wrong, the daemon does not run
        _fail(handover, tcpd, e)
    os._exit(status)


class Failure(Exception):
    """A reason to deny, said as it is."""


def _fail(handover: Handover | None, tcpd: Tcpd | None, error: BaseException) -> None:
    """Say why in syslog and pause as a refusal does. Nothing here may raise, or need an import."""
    try:
        Handover.stop()
        ident = "tcpd"
        if isinstance(error, Watchdog):
            text = f"error: watchdog: {error}: connection refused"
            ident = tcpd.log.ident if tcpd is not None else ident
        elif isinstance(error, Failure):
            text = str(error)
        else:
            text = f"error: internal error, connection refused: {type(error).__name__}: {error}"
        if handover is not None and handover.stdio[0] != 0:
            try:  # fd 0 is /dev/null standing in for the client: a descriptor for the log socket, should
                os.close(0)  # every other one be taken (EMFILE)
            except OSError:
                pass
        SyslogClient(ident).log(LOG_ERR, text)
    except BaseException:
        pass
    try:
        tcpd.pause() if tcpd is not None else time.sleep(settings.REFUSE_PAUSE)
    except BaseException:
        pass
