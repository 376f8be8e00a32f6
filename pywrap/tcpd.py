"""tcpd: the front end inetd runs for each connection. Decide, log, then exec the real daemon or refuse.

Contract: `main(argv)` with argv = [launcher path, argv[0] as inetd gave it, arguments...] (the native
launcher passes exactly that) never returns. It follows ../shared/spec/tcpd.md: the daemon's name and path
come from argv[0] (absolute: that program; otherwise REAL_DAEMON_DIR/argv[0]); when argv[0] is `tcpd`
itself the daemon is taken from argv[1] (tcpserver, systemd-socket-activate), and tcpd never execs itself.
The client and server come from fd 0 (a connection passed the systemd way, LISTEN_FDS and fd 3, is
first moved there: endpoints.take_listen_fds); the rules decide; syslog gets the reference's lines; a refusal
consumes a pending datagram, pauses and exits 0; a grant execs the daemon with fds 0-2 untouched.
Nothing is ever written to fds 0-2, and any internal error denies, is logged, and exits non-zero.
"""

from __future__ import annotations

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


class Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


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
    def __init__(self, launcher: str, args: list[str]) -> None:
        self.launcher = launcher
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
        sock = self.discovery.sock if self.discovery else None
        if sock is not None and self.discovery.sink:
            try:
                sock.settimeout(1.0)
                sock.recv(8192)
            except OSError:
                pass
        time.sleep(settings.REFUSE_PAUSE)
        raise Exit(status)

    def refuse(self, status: int = EXIT_REFUSED) -> NoReturn:
        severity = (self.effects.deny_severity if self.effects else None) or LOG_WARNING
        self.log.log(severity, verdict_line(self.request, granted=False))
        self.clean_exit(status)

    # the connection ---------------------------------------------------------------------------
    def run(self) -> NoReturn:
        from pywrap.endpoints import discover, take_listen_fds

        os.umask(0o022)
        problem = take_listen_fds(os.environ)  # systemd's fd 3 onto fds 0 and 1; a no-op under inetd
        if problem:
            self.diag.error(problem)
            self.clean_exit(EXIT_FAILURE)
        self.discovery = discover(0, self.diag)
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

    def build_request(self):
        from pywrap.request import Endpoint, Request

        resolvers: list = []  # one Resolver for both ends, made (and imported) by the first name lookup
        discovery = self.discovery

        def lookup(endpoint: Endpoint) -> str:
            from pywrap.resolver import Resolver, endpoint_name

            if not resolvers:
                resolvers.append(Resolver(report=self.diag.warning))
            return endpoint_name(resolvers[0], endpoint.sockaddr, self.diag.warning)

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
                               lambda: self.clean_exit(EXIT_REFUSED))

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
            os.execv(encode(self.path), [encode(a) for a in self.exec_argv])
        except OSError as e:
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


def main(argv: list[str]) -> NoReturn:
    _silence_stdio()
    status = EXIT_FAILURE
    try:
        args = [os.fsencode(a).decode("latin-1") for a in argv]
        if len(args) < 2:
            SyslogClient("tcpd").log(LOG_ERR, "error: started without a program name")
            raise Exit(EXIT_FAILURE)
        Tcpd(args[0], args[1:]).run()
    except Exit as e:
        status = e.status
    except BaseException as e:  # fail closed: whatever went wrong, the daemon does not run
        try:
            SyslogClient("tcpd").log(LOG_ERR, f"error: internal error, connection refused: "
                                              f"{type(e).__name__}: {e}")
        finally:
            status = EXIT_FAILURE
    os._exit(status)
