"""``python -m callback_kit``: the ``callback-kit`` command, for when the console script is not on ``PATH``.

Example:
    >>> import subprocess, sys
    >>> out = subprocess.run([sys.executable, "-m", "callback_kit", "--version"], capture_output=True, text=True)
    >>> out.stdout.startswith("callback-kit ")
    True
"""

from __future__ import annotations

import sys

from callback_kit.cli import main

if __name__ == "__main__":
    sys.exit(main())
