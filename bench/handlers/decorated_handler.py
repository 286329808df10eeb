"""A direct-invoke callback worker written with callback-kit: the decorated side of the comparison."""

from __future__ import annotations

from typing import Any

import callback_kit as ck


@ck.callback_handler
def handler(payload: dict[str, Any]) -> dict[str, Any]:
    """Answer the task with a small result; the token and the callback are callback-kit's business."""
    return {"ok": True, "n": payload.get("n")}
