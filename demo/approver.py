"""The demo's approver: the person who reads the approval e-mail and decides, with ``callback-kit send-*``.

The app's notifier (``handlers/approval_request.py``) hands its task's token off and publishes approve/reject
links to the approval topic. In the demo a queue subscribed to that topic stands in for the approver's inbox;
for each request the approver takes the token out of the link and completes the task with the command line, as
an operator would: ``callback-kit send-success`` to approve, ``callback-kit send-failure --error
Order.NotApproved`` to reject. The token goes to the command on stdin (``-``), never on its command line.
"""

from __future__ import annotations

import io
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from callback_kit.cli import main as cli_main
from callback_kit.logs import fingerprint

__all__ = ["Approver"]

_ORDER = re.compile(r"^Order (\S+) ", re.MULTILINE)
_LINK = re.compile(r"^(Approve|Reject):\s+(\S+)$", re.MULTILINE)


class Approver:
    """Decides each approval request by its order id: ``"approve"`` or ``"reject"`` (others are left waiting).

    Args:
        sim: the simulator (its Step Functions client answers the tasks).
        reporter: the demo's reporter, for one line per decision.
        decisions: order id -> ``"approve"`` or ``"reject"``.
    """

    def __init__(self, sim: Any, reporter: Any, decisions: Mapping[str, str]) -> None:
        self.sim = sim
        self.reporter = reporter
        self.decisions = dict(decisions)

    def subscribe(self, topic_arn: str) -> str:
        """Subscribe an inbox queue to ``topic_arn`` and read it; return the queue's name."""
        import boto3

        inbox = self.sim.create_queue(topic_arn.rsplit(":", 1)[-1] + "-approver-inbox")
        sns = boto3.client("sns", region_name=self.sim.region)
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox.arn, Attributes={"RawMessageDelivery": "true"})
        self.sim.route_sqs(inbox, self.read)
        return str(inbox.name)

    def read(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """Lambda-style handler of the inbox: decide every request in the batch."""
        for record in event.get("Records", []):
            self.decide(str(record.get("body", "")))
        return {"batchItemFailures": []}

    def decide(self, message: str) -> int | None:
        """Decide one request with ``callback-kit send-success`` / ``send-failure``; return the command's exit code."""
        order = _ORDER.search(message)
        links = dict(_LINK.findall(message))
        decision = self.decisions.get(order.group(1)) if order else None
        if order is None or decision not in ("approve", "reject") or "Approve" not in links:
            return None
        query = urllib.parse.urlsplit(links["Approve"]).query
        token = urllib.parse.parse_qs(query).get("token", [""])[0]
        if decision == "approve":
            argv = ["send-success", "-", "--output", json.dumps({"approved": True, "approver": "demo"})]
        else:
            argv = ["send-failure", "-", "--error", "Order.NotApproved", "--cause", "over this month's budget"]
        out, err = io.StringIO(), io.StringIO()
        code = cli_main(argv, client=self.sim.sfn, stdin=io.StringIO(token), stdout=out, stderr=err)
        said = (out.getvalue() or err.getvalue()).strip().splitlines()
        self.reporter.line(
            "approver",
            "RequestApproval",
            f"{order.group(1)}: callback-kit {argv[0]} {fingerprint(token)} -> exit {code}"
            + (f" ({said[-1]})" if said else ""),
        )
        return code
