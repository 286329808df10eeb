"""The local demo: the SAM app's own state machine, run end to end on moto's Step Functions simulator.

``python -m demo`` (or ``scripts/demo``, which also sets up ``.venv``) reads the checkout's
``template.yaml``, creates its queues, bus, rule, function and activity in moto, loads
``statemachine/*.asl.json`` with the template's ``DefinitionSubstitutions`` resolved to them, routes the three
``handlers/`` and an activity worker in-process, and runs a success and a failure case, printing each
execution's progress as it happens. No AWS account, no Docker.

Modules: :mod:`~demo.template` (find and read the SAM app), :mod:`~demo.deploy`
(create it in moto), :mod:`~demo.activities` (GetActivityTask on moto),
:mod:`~demo.report` (the live lines) and :mod:`~demo.run` (the cases and the CLI).

Example:
    >>> from demo import main
    >>> main(["--color", "never"])                                           # doctest: +SKIP
    0
"""

from __future__ import annotations

from demo.run import DemoContext, main, run

__all__ = ["DemoContext", "main", "run"]
