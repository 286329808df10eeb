"""End-to-end tests of durable callbacks on AWS's local durable-function runner (``DurableFunctionTestRunner``).

The runner and the SDK need Python >= 3.11 (the ``test`` extra installs them there only); on 3.10 each module
skips with that reason (``pytest.importorskip``).
"""

from __future__ import annotations

import sys

# The test modules skip themselves on 3.10, saying why; runner.py, collected for its doctests like any other module,
# would be left half-imported by its own skip, and the test modules' imports of it would then fail instead.
collect_ignore = ["runner.py"] if sys.version_info < (3, 11) else []
