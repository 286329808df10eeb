"""``python -m demo``: run the local demo (see :mod:`demo`)."""

from __future__ import annotations

import os
import sys

from demo.run import main

if __name__ == "__main__":
    status = main()
    # Everything is answered and printed by now; tearing down moto's hundreds of modules would add ~2 s of
    # interpreter shutdown to every run, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
