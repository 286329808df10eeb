"""The local demo: the SAM app's own state machine, run end to end on moto's Step Functions simulator.

``python -m callback_kit.demo`` (or ``scripts/demo``, which also sets up ``.venv``) reads the checkout's
``template.yaml``, creates its queues, bus, rule, function and activity in moto, loads
``statemachine/*.asl.json`` with the template's ``DefinitionSubstitutions`` resolved to them, routes the three
``handlers/`` and an activity worker in-process, and runs a success and a failure case, printing each
execution's progress as it happens. No AWS account, no Docker.

Modules: :mod:`~callback_kit.demo.template` (find and read the SAM app), :mod:`~callback_kit.demo.deploy`
(create it in moto), :mod:`~callback_kit.demo.activities` (GetActivityTask on moto),
:mod:`~callback_kit.demo.report` (the live lines) and :mod:`~callback_kit.demo.run` (the cases and the CLI).

Example:
    >>> from callback_kit.demo import main
    >>> main(["--color", "never"])                                           # doctest: +SKIP
    0
"""

from __future__ import annotations

from callback_kit.demo.run import DemoContext, main, run

__all__ = ["DemoContext", "main", "run"]
