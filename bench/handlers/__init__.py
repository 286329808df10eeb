"""The two Lambda handler modules the cold-start and per-task benchmarks compare.

They stay standalone (no import from ``bench``) because the cold-start benchmark imports each, by its bare
module name, in a fresh interpreter.
"""

from __future__ import annotations
