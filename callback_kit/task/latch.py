"""A one-way flag that threads can wait for: :class:`threading.Event`'s ``set``/``is_set``/``wait``, made cheap.

Every task run makes a few of these (its ``done`` flag, its ``cancelled`` flag) and an SQS batch of 10,000
records makes tens of thousands. A ``threading.Event`` is a ``Condition`` over a lock with a waiter list: about
4 us and five objects for the garbage collector to track, per flag. A :class:`Latch` is one lock, held from
creation until :meth:`Latch.set` releases it for good, and a boolean: a waiter acquires the lock (which only the
set can make free) and hands it straight on to the next waiter. A latch cannot be cleared.

Example:
    >>> latch = Latch()
    >>> latch.is_set(), latch.wait(timeout=0.01)
    (False, False)
    >>> latch.set(); latch.set()  # idempotent
    >>> latch.is_set(), latch.wait()
    (True, True)
"""

from __future__ import annotations

import _thread

# Serialise set() calls on one latch, so that its held lock is released exactly once. Striped: one lock for all
# latches would be taken by every task of a batch from every worker thread, and a worker preempted while
# holding it would make the others queue behind it.
_STRIPES = 64
_set_locks = tuple(_thread.allocate_lock() for _ in range(_STRIPES))


class Latch:
    """A flag that starts unset, can be set once (again is a no-op), and can be waited for with a timeout."""

    __slots__ = ("_flag", "_gate")

    def __init__(self) -> None:
        self._flag = False
        self._gate = _thread.allocate_lock()
        self._gate.acquire()  # held until set(): waiting means acquiring it

    def is_set(self) -> bool:
        """Whether :meth:`set` has been called."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter, now and to come."""
        with _set_locks[(id(self) >> 4) % _STRIPES]:
            if self._flag:
                return
            self._flag = True
            self._gate.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` seconds pass (``None``: no limit); return the flag."""
        if self._flag:
            return True
        got = self._gate.acquire() if timeout is None else self._gate.acquire(True, max(0.0, timeout))
        if got:
            self._gate.release()  # pass it on: a set latch lets every waiter through
            return True
        return self._flag

    def __repr__(self) -> str:
        return f"<Latch {'set' if self._flag else 'unset'}>"
