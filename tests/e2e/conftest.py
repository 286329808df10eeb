"""End-to-end tests: real state machines on moto's Step Functions simulator, answered by decorated handlers.

The handlers use callback-kit's own default client, built lazily on first use exactly as in a deployed Lambda.
moto reaches such a client by a hook it adds to botocore when moto is imported, and a client only gets the hooks
that existed when it was built; importing moto here, at collection, makes sure the default client is built after.
"""

from __future__ import annotations

import moto  # noqa: F401  # see the module docstring
