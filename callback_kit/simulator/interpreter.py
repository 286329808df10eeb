"""Apply the simulator's changes to moto's Step Functions while at least one simulator runs.

The changes are class attributes of moto's interpreter and backend (listed, each with what it corrects, in
:func:`~callback_kit.simulator.moto_adapter.interpreter_patches`), so they are process-wide: reference counted,
applied when the first simulator starts and undone when the last one stops. Installing first checks that the
installed moto is one the simulator knows (:func:`~callback_kit.simulator.moto_adapter.require`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from callback_kit.simulator import moto_adapter
from callback_kit.simulator.ledger import LEDGER

__all__ = ["install", "uninstall"]

_lock = threading.Lock()
_users = 0
_undo: list[Callable[[], None]] = []


def install() -> None:
    """Apply the changes to moto's interpreter (idempotent while a simulator runs; see :func:`uninstall`).

    Raises:
        UnsupportedMotoError: moto is missing, or a release whose private API the simulator does not know.
    """
    global _users
    moto_adapter.require()
    with _lock:
        _users += 1
        if _users == 1:
            try:
                for patch in moto_adapter.interpreter_patches():
                    _set(patch.owner, patch.name, patch.value)
            except BaseException:
                _users = 0
                _unpatch_all()
                raise


def uninstall() -> None:
    """Undo :func:`install` once the last simulator stops, and drop the ledger's records."""
    global _users
    with _lock:
        _users = max(0, _users - 1)
        if _users == 0:
            _unpatch_all()
            LEDGER.forget()


def _set(owner: type, name: str, value: object) -> None:
    had_own = name in owner.__dict__
    previous = owner.__dict__.get(name)

    def undo() -> None:
        if had_own:
            setattr(owner, name, previous)
        else:
            delattr(owner, name)

    setattr(owner, name, value)
    _undo.append(undo)


def _unpatch_all() -> None:
    while _undo:
        _undo.pop()()
