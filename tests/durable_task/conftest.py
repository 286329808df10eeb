"""The durable task handler's tests run on AWS's local durable runner, which installs on Python 3.11 and later."""

from __future__ import annotations

import sys

# The test modules skip themselves on 3.10, saying why; the helpers module would only fail to import (it is
# collected for its doctests like any other module).
collect_ignore = ["helpers.py"] if sys.version_info < (3, 11) else []
