"""Write pywrap/_build.py: the settings `make install` bakes into an installed copy.

Usage: write_build_settings.py OUTFILE NAME=VALUE ...   (values are strings; names must be known settings)
"""

import sys

KNOWN = {"REAL_DAEMON_DIR", "HOSTS_ALLOW", "HOSTS_DENY"}


def main(argv: list[str]) -> int:
    out, pairs = argv[1], argv[2:]
    lines = ['"""Settings baked in by make install; overrides pywrap.settings defaults."""', ""]
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in KNOWN:
            print(f"unknown setting: {pair!r}", file=sys.stderr)
            return 2
        if not value.startswith("/"):
            print(f"{name} must be an absolute path: {value!r}", file=sys.stderr)
            return 2
        lines.append(f"{name} = {value!r}")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
