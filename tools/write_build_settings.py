"""Write pywrap/_build.py: the settings `make install` bakes into an installed copy.

Usage: write_build_settings.py OUTFILE NAME=VALUE ...   (values are strings; names must be known settings;
an empty WATCHDOG is left to pywrap/settings.py, which derives it from DNS_TIMEOUT and RFC931_TIMEOUT)
"""

import re
import sys

PATHS = {"REAL_DAEMON_DIR", "HOSTS_ALLOW", "HOSTS_DENY", "CACHE_DIR"}
NUMBERS = {"REFUSE_PAUSE", "RFC931_TIMEOUT", "DNS_TIMEOUT", "WATCHDOG"}
DERIVED = {"WATCHDOG"}  # empty: computed from the others (pywrap/settings.py)
FLAGS = {"PARANOID"}
SERVERS = {"DNS_SERVERS"}
SERVER = re.compile(r"^[0-9A-Fa-f.:]+(#\d+)?$")


def main(argv: list[str]) -> int:
    out, pairs = argv[1], argv[2:]
    lines = ['"""Settings baked in by make install; overrides pywrap.settings defaults."""', ""]
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if sep and name in NUMBERS and value.isdigit():
            lines.append(f"{name} = {int(value)}")
        elif sep and name in FLAGS and value in ("0", "1", ""):
            lines.append(f"{name} = {value == '1'}")
        elif sep and name in SERVERS and all(SERVER.match(v) for v in value.split()):
            lines.append(f"{name} = {value!r}")
        elif sep and name in DERIVED and value == "":
            lines.append(f"{name} = None")
        elif sep and name == "CACHE_DIR" and value == "":
            lines.append(f"{name} = ''")
        elif sep and name in PATHS and value.startswith("/") and "'" not in value:
            lines.append(f"{name} = {value!r}")
        else:
            print(f"bad setting: {pair!r} (paths must be absolute, numbers whole)", file=sys.stderr)
            return 2
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
