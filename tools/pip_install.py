#!/usr/bin/env python3
"""``pip install ARGS`` into this interpreter's environment, as `make install` runs it:

    .venv/bin/python tools/pip_install.py -e '.[test]'

pip's own output is either silent (--quiet) or several lines per package, and on a re-install
one "Requirement already satisfied" per package kept. This shows one line per package installed
("Collecting ..."), pip's other messages, warnings and errors as they are, and as they come.
Exit code: pip's (130 on Ctrl-C).
"""
from __future__ import annotations

import subprocess
import sys

#: pip's lines not shown: downloads (the "Collecting" line before says which package), the
#: packages that are installed already, the details of replacing a package, and the file names
#: of the wheel built for this project.
HIDDEN = ("Requirement already satisfied", "  Downloading ", "  Using cached ", "  Obtaining dependency information",
          "  Attempting uninstall: ", "    Found existing installation: ", "    Uninstalling ",
          "      Successfully uninstalled ", "  Created wheel for ", "  Stored in directory: ")
#: ... and the end of each step of building this project when it went well (its start is shown).
HIDDEN_ENDS = ": finished with status 'done'\n"


def main(args: list[str]) -> int:
    command = [sys.executable, "-u", "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
               *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as pip:
        try:
            for line in pip.stdout:
                if not line.startswith(HIDDEN) and not line.endswith(HIDDEN_ENDS):
                    print(line, end="", flush=True)
            return pip.wait()
        except KeyboardInterrupt:  # pip got the Ctrl-C too
            pip.wait()
            return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
