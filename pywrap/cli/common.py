"""What tcpdmatch and tcpdchk share: the reference's environment checks and a GNU-style option parser."""

from __future__ import annotations

import os
import stat

from pywrap import settings
from pywrap.diag import Diagnostics
from pywrap.inetconf import check_path


class UsageError(Exception):
    pass


def check_real_daemon_dir(diag: Diagnostics) -> None:
    try:
        st = check_path(settings.REAL_DAEMON_DIR, diag)
        if not stat.S_ISDIR(st.st_mode):
            diag.warning(f"REAL_DAEMON_DIR {settings.REAL_DAEMON_DIR} is not a directory")
    except OSError as e:
        diag.warning(f"REAL_DAEMON_DIR {settings.REAL_DAEMON_DIR}: {os.strerror(e.errno or 0)}")


def check_tables(diag: Diagnostics, *tables: str) -> None:
    """World-writable tables (or parents of an absolute path) are reported; missing ones are fine."""
    for table in tables:
        try:
            check_path(table, diag)
        except OSError:
            pass


def table_paths(use_cwd: bool) -> tuple[str, str]:
    if use_cwd:
        return "hosts.allow", "hosts.deny"
    return settings.HOSTS_ALLOW, settings.HOSTS_DENY


def getopt(argv: list[str], flags: str, with_value: str, long_flags: tuple[str, ...] = ()) \
        -> tuple[dict[str, str | bool], list[str]]:
    """GNU getopt: single-letter flags (bundled), letters taking a value, `--long` flags; options may follow
    operands. Raises UsageError with glibc's message."""
    prog = os.path.basename(argv[0]) if argv else "?"
    options: dict[str, str | bool] = {}
    operands: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            operands.extend(args)
            break
        if arg.startswith("--"):
            if arg[2:] not in long_flags:
                raise UsageError(f"{prog}: unrecognized option '{arg}'")
            options[arg[2:]] = True
        elif arg.startswith("-") and arg != "-":
            letters = arg[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                if letter in flags:
                    options[letter] = True
                elif letter in with_value:
                    value = letters or next(args, None)
                    if value is None:
                        raise UsageError(f"{prog}: option requires an argument -- '{letter}'")
                    options[letter], letters = value, ""
                else:
                    raise UsageError(f"{prog}: invalid option -- '{letter}'")
        else:
            operands.append(arg)
    return options, operands
