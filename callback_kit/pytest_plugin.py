"""callback-kit's pytest plugin: the ``local_sfn`` fixture, a state machine runner on moto's Step Functions simulator.

Installed with the package and registered through the ``pytest11`` entry point, so any project that has
callback-kit and its ``test`` extra (moto) installed can write:

Example:
    >>> def test_my_worker(local_sfn):                                       # doctest: +SKIP
    ...     queue = local_sfn.create_queue("work")
    ...     local_sfn.route_sqs(queue, my_module.handler)
    ...     arn = local_sfn.create_state_machine("flow", definition)
    ...     assert local_sfn.run(arn, {"orderId": "o-1"}, timeout=3)["status"] == "SUCCEEDED"

The simulator is imported inside the fixture, not here: pytest loads this module in every test session of every
project that has callback-kit installed, and that must cost nothing when the fixture is not used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from callback_kit.simulator import LocalStepFunctions

__all__ = ["local_sfn"]


@pytest.fixture
def local_sfn() -> Iterator[LocalStepFunctions]:
    """A started :class:`~callback_kit.simulator.LocalStepFunctions`, stopped (and the environment restored) after.

    Handlers get a :class:`callback_kit.testing.FakeLambdaContext` named after the function or queue, with 15
    minutes remaining. The pump is not started: call ``local_sfn.run(...)`` or use ``with local_sfn.pump():``.
    """
    from callback_kit.simulator import LocalStepFunctions
    from callback_kit.simulator.moto_adapter import UnsupportedMotoError
    from callback_kit.testing import FakeLambdaContext

    def context(name: str) -> FakeLambdaContext:
        return FakeLambdaContext(function_name=name)

    simulator = LocalStepFunctions(context_factory=context)
    try:
        simulator.__enter__()
    except UnsupportedMotoError as exc:
        # One line (the installed moto, the supported range, the fix), not a traceback from inside moto.
        pytest.fail(str(exc), pytrace=False)
    try:
        yield simulator
    finally:
        simulator.__exit__(None, None, None)
