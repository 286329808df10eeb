"""One benchmark in its own interpreter: ``python -m bench._child NAME OUT.json [--quick]`` (used by the runner)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from bench.common import apply_fake_aws_env, rows_to_json


def main(argv: list[str]) -> int:
    """Run benchmark ``argv[0]`` and write its rows to ``argv[1]``."""
    name, out = argv[0], Path(argv[1])
    quick = "--quick" in argv[2:]
    apply_fake_aws_env()
    module = importlib.import_module(f"bench.{name}")
    rows = module.run(quick)
    out.write_text(rows_to_json(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
