"""Benchmarks of callback-kit against what users write by hand, reported as ratios from one run.

Run ``python -m bench`` for the full set, ``python -m bench --quick`` for a few iterations (CI). Every number is
a ratio against a baseline measured side by side in the same run, so a slow or busy machine moves both sides;
nothing here is an absolute target, and nothing here runs in the unit tests. See ``docs/performance.md``.
"""

from __future__ import annotations
