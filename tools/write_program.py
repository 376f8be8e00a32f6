"""Write one installed program: a tiny script run by PYTHON in isolated mode.

Usage: write_program.py OUTFILE PYTHON LIBDIR NAME
NAME is a module under pywrap.cli (dashes become underscores). -I ignores PYTHON* variables and keeps the
cwd and user site off sys.path; -S skips site-packages, so only LIBDIR supplies code.
"""

import os
import sys

TEMPLATE = """#!{python} -IS
import sys
sys.path.insert(0, {libdir!r})
from pywrap.cli.{module} import main
sys.exit(main())
"""


def main(argv: list[str]) -> int:
    out, python, libdir, name = argv[1:5]
    text = TEMPLATE.format(python=python, libdir=libdir, module=name.replace("-", "_"))
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
