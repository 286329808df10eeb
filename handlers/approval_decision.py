"""Approval API (API Gateway): completes the task that ``approval_request.py`` handed off, and answers in HTTP.

``GET /approval/approve?token=...`` (the e-mailed link) sends SendTaskSuccess with the decision, and
``GET /approval/reject?token=...&reason=...`` sends SendTaskFailure ``Order.NotApproved``, which the state
machine's Catch routes to ``OrderFailed``. An application can ``POST`` the same paths with a JSON body
``{"token": ..., "reason": ...}``.

| what happened | HTTP status |
|---|---|
| the decision was delivered | 200 |
| no token, or not a task token (``InvalidToken``: cut short, still URL-encoded) | 400 |
| the task was already decided, expired, or its execution stopped | 409 |
| Step Functions could not be reached | 502 (try the link again) |

The token is a bearer credential: it is never logged, and it is not echoed in any response.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

import callback_kit as ck
from callback_kit.logs import fingerprint

logger = Logger()
app = APIGatewayRestResolver()

#: The error name a rejection sends; the state machine's Catch sees it.
ERROR_NOT_APPROVED = "Order.NotApproved"


@app.route("/approval/approve", method=["GET", "POST"])
def approve() -> Response[str]:
    """Approve: the task succeeds with the decision as its output."""
    decided_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return _decide("approved", lambda token: ck.send_success(token, {"approved": True, "decidedAt": decided_at}))


@app.route("/approval/reject", method=["GET", "POST"])
def reject() -> Response[str]:
    """Reject: the task fails with ``Order.NotApproved`` and the approver's reason as its cause."""
    reason = _param("reason") or "rejected by the approver"
    return _decide("rejected", lambda token: ck.send_failure(token, ERROR_NOT_APPROVED, reason[:1000]))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (API Gateway REST API, proxy integration)."""
    return app.resolve(event, context)


def _decide(decision: str, send: Callable[[str], ck.Delivery]) -> Response[str]:
    token = _param("token")
    if not token:
        return _json(400, {"message": "no token: open the link from the approval e-mail"})
    fp = fingerprint(token)
    try:
        delivery = send(token)
    except ck.InvalidTokenError:
        logger.warning("not a task token", extra={"token_fp": fp})
        return _json(400, {"message": "this is not a valid approval link (was it cut short or changed?)"})
    except ck.CallbackDeliveryError as exc:
        logger.error("decision not delivered", extra={"token_fp": fp, "code": exc.code})
        return _json(502, {"message": "the decision could not be recorded now; open the link again shortly"})
    if delivery is ck.Delivery.ALREADY_CLOSED:
        logger.info("decision for a closed task", extra={"token_fp": fp, "decision": decision})
        return _json(409, {"message": "this request was already decided, or it expired; nothing changed"})
    logger.info("decision delivered", extra={"token_fp": fp, "decision": decision})
    return _json(200, {"decision": decision})


def _param(name: str) -> str | None:
    event = app.current_event
    value = event.get_query_string_value(name=name, default_value=None)
    text = event.decoded_body if event.body else None
    if value is None and text:
        try:
            body = json.loads(text)
        except ValueError:
            return None
        found = body.get(name) if isinstance(body, dict) else None
        value = found if isinstance(found, str) else None
    return value.strip() if value else None


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))
