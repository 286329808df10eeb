"""The decorated worker with ``ck.prewarm()`` at module level: INIT pays for the client and the first imports."""

from __future__ import annotations

from typing import Any

import callback_kit as ck

ck.prewarm()


@ck.callback_handler
def handler(payload: dict[str, Any]) -> dict[str, Any]:
    """Answer the task with a small result; the token and the callback are callback-kit's business."""
    return {"ok": True, "n": payload.get("n")}
