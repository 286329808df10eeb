"""The stranded-token reaper (``ReaperFunction``): fail the container tasks whose container stopped unanswered.

An ``ecs:runTask.waitForTaskToken`` task is answered by its container (``callback-kit run``), but a container that
never starts, or is killed first, answers nothing. The EventBridge rule in ``template.yaml`` sends this function
every STOPPED task of the cluster that Step Functions started; ``callback_kit.reaper`` fails the task of one whose
container had not answered with ``CallbackKit.ContainerStopped``, and leaves the others alone.
``$CALLBACK_KIT_TOKEN_ENV`` names the container variable that holds the token (default ``TASK_TOKEN``).

Try it offline on a sample event::

    from callback_kit.reaper import make_handler
    from callback_kit.testing import FakeStepFunctions
    make_handler(client=FakeStepFunctions())(json.load(open("events/ecs_task_running.json")), None)
"""

from __future__ import annotations

from callback_kit.reaper import handler

__all__ = ["handler"]
