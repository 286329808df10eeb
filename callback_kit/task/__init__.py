"""The task path: what happens to one task between its record and its answer, whatever brought it in.

Data flows one way through it, as through the package (docs/reliability.md states its invariants):

* :mod:`~callback_kit.task.runner` runs one task: context, heartbeats, the user's function, the outcome, and
  exactly one answer (or a hand-back), for the Lambda handler, the activity worker and ``callback-kit run`` alike;
* :mod:`~callback_kit.task.heartbeat` (with :mod:`~callback_kit.task.heartbeat_senders`) beats every open token from
  one scheduler thread;
* :mod:`~callback_kit.task.completion` sends answers and beats with retries, deadline bounds and pacing, through
  :mod:`~callback_kit.task.answers` (one object per backend: Step Functions task tokens, Lambda durable callbacks),
  whose error codes :mod:`~callback_kit.task.classify` reads;
* :mod:`~callback_kit.task.ratelimit` paces the calls to one endpoint, :mod:`~callback_kit.task.timeouts` bounds
  each call by the time left, and :mod:`~callback_kit.task.ledger` remembers the tokens this process answered;
* :mod:`~callback_kit.task.workers` and :mod:`~callback_kit.task.latch` are the threads and the flag they run on.

Nothing here is public API: ``callback_kit`` re-exports what users call (``ck.send_success``, ...).
"""
