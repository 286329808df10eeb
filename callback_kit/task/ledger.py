"""Which tokens this process is running or has answered, so that a duplicate record never sends a second answer.

SQS and EventBridge deliver at least once: the same token can arrive twice in one batch, or again in a later
invocation of the same (warm) sandbox. The first run of a token *owns* it; a duplicate that arrives while the owner
runs waits for it (within its own deadline), and one that arrives after the owner's answer was delivered is
acknowledged without running the function or calling Step Functions. So this process sends at most one
completion per token, and nothing after a delivered one. A token whose answer was not delivered (handed back) is
released, so that its redelivery runs again.

Only a bounded number of answered tokens is remembered (by fingerprint, never the token itself); an older
duplicate runs and is answered ``TaskTimedOut`` by Step Functions as before. For duplicates across sandboxes, use
:mod:`callback_kit.idempotency`. There is one ledger per Step Functions client (:func:`ledger_for`): the default
client's is process-wide, and a test that makes a new fake Step Functions starts from an empty ledger, however
often its token strings were seen before.

Example:
    >>> ledger = Ledger(max_answered=2)
    >>> ledger.claim("tok-1", "run_a") is None      # the first run owns the token
    True
    >>> ledger.claim("tok-1", "run_b")               # a duplicate while it runs: the owner
    'run_a'
    >>> ledger.release("tok-1", "run_a", answered=True)
    >>> ledger.claim("tok-1", "run_c")               # after its answer: the token is done
    True
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from typing import Any

#: How many answered tokens are remembered.
DEFAULT_MAX_ANSWERED = 10_000


class Ledger:
    """The tokens this process runs or answered (see the module docstring).

    Every record of a batch claims and releases its token here, from up to ``max_concurrency`` threads at once,
    so there is no lock: each step is one atomic operation on a built-in dict (``setdefault``, ``get``, ``pop``,
    an item assignment), and the order of the steps makes every interleaving safe. A release records the token
    as answered *before* it gives up ownership; a claim takes ownership, then looks for the token among the
    answered. So a claim that races a release either finds the owner (and waits for its result) or finds the
    answer. (With a lock, a worker preempted while holding it made the others queue behind it: a lock convoy
    that cost an SQS batch of 10,000 records two thread switches per record.)
    """

    def __init__(self, max_answered: int = DEFAULT_MAX_ANSWERED) -> None:
        self._owners: dict[str, Any] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._max = max_answered

    def claim(self, key: str, run: Any) -> Any:
        """Own ``key`` for ``run``: ``None`` if it now does, the owning run if another runs it, ``True`` if answered."""
        if key in self._answered:
            with contextlib.suppress(KeyError):  # forgotten (evicted) meanwhile: still answered
                self._answered.move_to_end(key)
            return True
        owner = self._owners.setdefault(key, run)
        if owner is not run:
            return owner
        if key in self._answered:
            # Answered by a run that released it between the first look and the claim: not ours to run.
            self._owners.pop(key, None)
            return True
        return None

    def clear(self) -> None:
        """Forget every answered token (tests use it to stand for another sandbox, which has a ledger of its own)."""
        self._answered.clear()

    def release(self, key: str, run: Any, *, answered: bool) -> None:
        """End ``run``'s ownership of ``key``; remember the key when its answer was delivered (or it was closed)."""
        if self._owners.get(key) is not run:
            return
        if answered:
            answered_keys = self._answered
            answered_keys[key] = None  # first: a claim that still sees the owner waits for its result
            while len(answered_keys) > self._max:
                try:
                    answered_keys.popitem(last=False)
                except KeyError:  # another release evicted the last one first
                    break
        self._owners.pop(key, None)


_default = Ledger()
_ledgers: dict[int, Ledger] = {}
_ledgers_lock = threading.Lock()


def ledger_for(client: Any) -> Ledger:
    """The ledger of the tasks answered through ``client`` (``None``: a process-wide one).

    Example:
        >>> ledger_for(None) is ledger_for(None)
        True
    """
    if client is None:
        return _default
    key = id(client)
    ledger = _ledgers.get(key)  # the common case, without the lock: a task asks once per run
    if ledger is not None:
        return ledger
    with _ledgers_lock:
        ledger = _ledgers.get(key)
        if ledger is None:
            ledger = _ledgers[key] = Ledger()
            # Dropped with its client, so that a new client at the same address starts afresh (a client that is not
            # weakly referenceable keeps its ledger, bounded like any).
            with contextlib.suppress(TypeError):
                weakref.finalize(client, _ledgers.pop, key, None)
    return ledger
