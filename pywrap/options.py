"""hosts_options: check and run the options of the rule that matched, left to right, as the reference does.

Contract: `run_options(fields, request, diag, effects)` returns an `OptionsResult`: whether an `allow` /
`deny` / `twist` or an error ended processing, and whether an `aclexec` failed. Syntax and semantic errors
use the reference's wording and end processing with a denial. What an option *does* is delegated to an
`Effects` object: `DryRun` (tcpdmatch, tcpdchk) validates and changes nothing in the tool's own process —
unlike Debian's tools, which really change their uid, umask and environment — except `banners`, whose text
the tools show. The tcpd effects arrive with tcpd itself.
"""

from __future__ import annotations

from pywrap.diag import Diagnostics
from pywrap.expand import ExpansionTooLong, expand
from pywrap.lean import record
from pywrap.numeric import scan_int, scan_octal
from pywrap.request import Request
from pywrap.rules import OptionField
from pywrap.text import fold

TYPE_CHECKING = False  # no typing or collections import at run time: tcpd pays for it per connection
if TYPE_CHECKING:
    from collections.abc import Callable

C_SPACE = " \t\n\v\f\r"

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "lpr": 6, "news": 7, "uucp": 8, "cron": 9,
    **{f"local{n}": 16 + n for n in range(8)},
}
LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}


class OptionSpec(record("OptionSpec", "value last expands")):
    value: str        # "required", "optional" or "none"
    last: bool        # must be the last option of the rule
    expands: bool     # the value is %-expanded first
    __slots__ = ()


SPECS: dict[str, OptionSpec] = {
    "allow": OptionSpec("none", True, False),
    "deny": OptionSpec("none", True, False),
    "spawn": OptionSpec("required", False, True),
    "twist": OptionSpec("required", True, True),
    "aclexec": OptionSpec("required", False, True),
    "severity": OptionSpec("required", False, False),
    "rfc931": OptionSpec("optional", False, False),
    "banners": OptionSpec("required", False, False),
    "nice": OptionSpec("optional", False, False),
    "setenv": OptionSpec("required", False, True),
    "umask": OptionSpec("required", False, False),
    "user": OptionSpec("required", False, False),
    "group": OptionSpec("required", False, False),
    "keepalive": OptionSpec("none", False, False),
    "linger": OptionSpec("required", False, False),
}


class OptionError(Exception):
    """An option error: logged as `error: ...`, and the request is denied."""


class OptionsResult:
    __slots__ = ("final", "aclexec_failed", "error")

    def __init__(self) -> None:
        # "allow", "deny" (an error counts as deny) or "twist"; None: processing fell through
        self.final: str | None = None
        self.aclexec_failed = False
        self.error = False              # an option error ended processing


class Effects:
    """What options do. Every method may raise OptionError for the reference's option errors."""

    def spawn(self, command: str) -> None: ...
    def twist(self, command: str) -> None: ...
    def aclexec(self, command: str) -> bool:  # True: the command succeeded
        return True
    def severity(self, facility: int | None, level: int) -> None: ...
    def rfc931(self, timeout: int | None) -> None: ...
    def banners(self, directory: str, request: Request) -> None: ...
    def nice(self, increment: int) -> None: ...
    def setenv(self, name: str, value: str) -> None: ...
    def umask(self, mask: int) -> None: ...
    def user(self, uid: int, gid: int | None, name: str) -> None: ...
    def group(self, gid: int, name: str) -> None: ...
    def keepalive(self) -> None: ...
    def linger(self, seconds: int) -> None: ...


def run_options(fields: tuple[OptionField, ...], request: Request, diag: Diagnostics,
                effects: Effects) -> OptionsResult:
    result = OptionsResult()
    try:
        for index, field in enumerate(fields):
            spec = _check_field(field, index == len(fields) - 1)
            keyword = fold(field.keyword)
            value = field.value
            if spec.expands:
                value = expand(value, request, diag.warning).strip(C_SPACE)
            diag.option(field.keyword, value)
            if keyword in ("allow", "deny", "twist"):
                if keyword == "twist":
                    effects.twist(value)
                result.final = keyword
                return result
            if not _apply(keyword, value, request, effects):
                result.aclexec_failed = True
    except ExpansionTooLong as e:
        diag.warning(str(e))  # the reference's words and level; the caller stops (no verdict)
        raise
    except OptionError as e:
        diag.error(str(e))
        result.final = "deny"
        result.error = True
    return result


def _check_field(field: OptionField, is_last: bool) -> OptionSpec:
    if not field.keyword:
        raise OptionError("missing option name")
    spec = SPECS.get(fold(field.keyword))
    if spec is None:
        raise OptionError(f'bad option name: "{field.keyword}"')
    if spec.value == "required" and not field.value:
        raise OptionError(f'option "{field.keyword}" requires value')
    if spec.value == "none" and field.value:
        raise OptionError(f'option "{field.keyword}" requires no value')
    if spec.last and not is_last:
        raise OptionError(f'option "{field.keyword}" must be at end')
    return spec


def _apply(keyword: str, value: str, request: Request, effects: Effects) -> bool:
    """Validate and apply one non-final option; False only for a failed aclexec."""
    handler = _HANDLERS[keyword]
    return handler(value, request, effects) is not False


def _severity(value: str, request: Request, effects: Effects) -> None:
    facility_text, dot, level_text = value.partition(".")
    if not dot:
        facility_text, level_text = "", value
    facility = None
    if dot:
        facility = FACILITIES.get(fold(facility_text))
        if facility is None:
            raise OptionError(f'bad syslog facility or severity: "{facility_text}"')
    level = LEVELS.get(fold(level_text))
    if level is None:
        raise OptionError(f'bad syslog facility or severity: "{level_text}"')
    effects.severity(facility, level)


def _rfc931(value: str, request: Request, effects: Effects) -> None:
    timeout = None
    if value:
        timeout = scan_int(value)
        if timeout is None or timeout <= 0:
            raise OptionError(f'bad rfc931 timeout: "{value}"')
    effects.rfc931(timeout)


def _nice(value: str, request: Request, effects: Effects) -> None:
    increment = 10
    if value:
        parsed = scan_int(value)
        if parsed is None:
            raise OptionError(f'bad nice value: "{value}"')
        increment = parsed
    effects.nice(increment)


def _setenv(value: str, request: Request, effects: Effects) -> None:
    cut = next((i for i, c in enumerate(value) if c in " \t\r\n"), len(value))
    name, rest = value[:cut].strip(C_SPACE), value[cut + 1:].strip(C_SPACE)
    if not name or "=" in name:
        raise OptionError("memory allocation failure")  # libc's setenv refuses; the reference says this
    effects.setenv(name, rest)


def _umask(value: str, request: Request, effects: Effects) -> None:
    mask = scan_octal(value)
    if mask is None or mask > 0o777:
        raise OptionError(f'bad umask value: "{value}"')
    effects.umask(mask)


def _group(value: str, request: Request, effects: Effects) -> None:
    import grp

    try:
        entry = grp.getgrnam(value)
    except (KeyError, ValueError):
        raise OptionError(f'unknown group: "{value}"') from None
    effects.group(entry.gr_gid, value)


def _user(value: str, request: Request, effects: Effects) -> None:
    import grp
    import pwd

    name, dot, group = value.partition(".")
    gid = None
    if dot:
        try:
            gid = grp.getgrnam(group).gr_gid
        except (KeyError, ValueError):
            raise OptionError(f'unknown group: "{group}"') from None
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise OptionError(f'unknown user: "{name}"') from None
    effects.user(entry.pw_uid, gid if gid is not None else None, name)


def _linger(value: str, request: Request, effects: Effects) -> None:
    seconds = scan_int(value)
    if seconds is None or seconds < 0:
        raise OptionError(f'bad linger value: "{value}"')
    effects.linger(seconds)


_HANDLERS: dict[str, Callable[[str, Request, Effects], bool | None]] = {
    "spawn": lambda v, r, e: e.spawn(v),
    "aclexec": lambda v, r, e: e.aclexec(v),
    "severity": _severity,
    "rfc931": _rfc931,
    "banners": lambda v, r, e: e.banners(v, r),
    "nice": _nice,
    "setenv": _setenv,
    "umask": _umask,
    "user": _user,
    "group": _group,
    "keepalive": lambda v, r, e: e.keepalive(),
    "linger": _linger,
}


class DryRun(Effects):
    """The tools' effects: validate only; banners are shown through `write_banner`."""

    def __init__(self, write_banner: Callable[[bytes], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.write_banner = write_banner
        self.warn = warn or (lambda text: None)

    def banners(self, directory: str, request: Request) -> None:
        if self.write_banner is None:
            return
        from pywrap.banners import banner_bytes

        data = banner_bytes(directory, request, self.warn)
        if data:
            self.write_banner(data)

