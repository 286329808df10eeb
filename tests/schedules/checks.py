"""The invariant checkers: each reads a trace's ground truth and returns the violations it finds.

They check invariants (docs/reliability.md), never sample outcomes: what a function returned does not matter,
only that its task was answered once, in time, or handed back, and never both. Times in messages are schedule
seconds after the invocation started.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from callback_kit.exceptions import ERROR_TASK_TIMEOUT, ERROR_WORKER_SHUTDOWN
from callback_kit.logs import fingerprint
from tests.schedules.drivers import Trace
from tests.schedules.fake import CLOSED, HEARTBEATS, CallRecord

#: Real seconds of lateness forgiven to the OS: on a loaded machine a thread wakes some milliseconds late.
SLACK = 0.02


@dataclass(frozen=True)
class Violation:
    """One broken invariant: its number, a short cause (for grouping) and what exactly happened."""

    invariant: int
    cause: str
    detail: str

    def __str__(self) -> str:
        return f"invariant {self.invariant} ({self.cause}): {self.detail}"


def _t(trace: Trace, when: float | None) -> str:
    return "never" if when is None else f"{(when - trace.t_start) / trace.scale:.2f}s"


def _span(trace: Trace, seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds / trace.scale:.2f}s"


def _calls(trace: Trace, token: str | None) -> list[CallRecord]:
    return [c for c in trace.fake.calls if token is not None and c.token == token]


def _ambiguous(calls: Iterable[CallRecord]) -> bool:
    return any(c.completion and c.ambiguous for c in calls)


def check_one_answer(trace: Trace) -> list[Violation]:
    """1: at most one completion lands per token; no call starts after a landed completion returned."""
    out: list[Violation] = []
    for token in {t for t in trace.tokens if t is not None}:
        calls = _calls(trace, token)
        landed = [c for c in calls if c.completion and c.landed]
        if len(landed) > 1:
            out.append(Violation(1, "two completions landed", f"{len(landed)} completions landed for one token"))
        known = [c for c in landed if c.result == "ok" and c.end is not None]
        if not known or trace.schedule.over_http:
            # Through a real client, "answered" at the fake is not "returned to the caller": the response may have
            # missed the client's own timeout, after which a retry is right.
            continue
        first = min(known, key=lambda c: c.end or 0.0)
        assert first.end is not None
        late = [c for c in calls if c.start > first.end]
        if late:
            c = late[0]
            dup = sum(1 for t in trace.tokens if t == token) > 1
            out.append(
                Violation(
                    1,
                    f"{c.api} after a delivered completion" + (" (duplicate record)" if dup else ""),
                    f"{c.api} started at {_t(trace, c.start)} after {first.api} landed and returned at "
                    f"{_t(trace, first.end)}",
                )
            )
    return out


def _handed_off(trace: Trace, i: int) -> bool:
    """The function passed the token on (``ck.hand_off()``) and returned: whoever holds it answers."""
    return any(r.how == "handed_off" for r in trace.runs.by_record.get(i, []))


def _answered(trace: Trace, i: int) -> bool:
    token = trace.tokens[i]
    calls = _calls(trace, token)
    if any(c.completion and c.landed for c in calls):
        return True
    if any(c.result in CLOSED for c in calls):
        return True
    # Handed off: someone else answers (the function returned after ck.hand_off()).
    return any(r.how == "handed_off" for j, rs in trace.runs.by_record.items() if trace.tokens[j] == token for r in rs)


def check_nothing_dropped(trace: Trace) -> list[Violation]:
    """2: every record ends answered, handed back or handed off; FIFO stops only the failing group."""
    s = trace.schedule
    out: list[Violation] = []
    lambda_driver = s.driver != "activity"
    for i, r in enumerate(s.records):
        back = i in trace.handed_back
        if r.kind == "missing" and not back:
            out.append(Violation(2, "record without a token acknowledged", f"record {i} had no token"))
        elif r.kind == "invalid" and not back and not _handed_off(trace, i):
            out.append(Violation(2, "InvalidToken acknowledged", f"record {i}: Step Functions said InvalidToken"))
        elif r.kind in ("real", "duplicate") and not back and not _answered(trace, i):
            if not lambda_driver and (not _taken(trace, i) or _attempted(trace, i)):
                # An activity task has no "hand back": one never taken is still queued, and one whose every
                # completion call failed is undeliverable (invariant 5 checks that the worker counted it).
                continue
            out.append(Violation(2, _drop_cause(trace, i), f"record {i} ({r.behaviour}) acknowledged, unanswered"))
    if s.driver == "fifo":
        out += _check_fifo(trace)
    return out


def _attempted(trace: Trace, i: int) -> bool:
    return any(c.completion for c in _calls(trace, trace.tokens[i]))


def _taken(trace: Trace, i: int) -> bool:
    return trace.tokens[i] in trace.fake.delivered


def _drop_cause(trace: Trace, i: int) -> str:
    r = trace.schedule.records[i]
    calls = _calls(trace, trace.tokens[i])
    if r.behaviour in ("cancelled_error", "system_exit", "keyboard_interrupt"):
        return f"BaseException ({r.behaviour}) left the task unanswered"
    if r.behaviour == "str_raises" and not any(c.completion for c in calls):
        return "exception whose __str__ raises left the task unanswered"
    if not any(c.completion for c in calls):
        return "acknowledged without any completion call"
    return "acknowledged after its completion failed"


def _check_fifo(trace: Trace) -> list[Violation]:
    s = trace.schedule
    out: list[Violation] = []
    guard_fired = (
        trace.t_return is not None
        and trace.deadline is not None
        and (trace.t_return >= trace.deadline - s.margin * trace.scale - SLACK)
    )
    stopped: dict[str | None, int] = {}
    for i, r in enumerate(s.records):
        group = r.group
        if group in stopped:
            if i not in trace.handed_back:
                out.append(Violation(2, "FIFO: record after a handed-back one acknowledged", f"record {i} ({group})"))
            if i in trace.runs.by_record and trace.runs.by_record[i][0].started > _handed_at(trace, stopped[group]):
                out.append(Violation(2, "FIFO: record after a handed-back one ran", f"record {i} ({group})"))
            continue
        if i in trace.handed_back:
            # Its own failure: no token, a token Step Functions refused, a message too deep to read, or a run or a
            # call of its own token.
            unreadable = r.kind in ("missing", "invalid") or r.shape == "deep"
            own = unreadable or i in trace.runs.by_record or bool(_calls(trace, trace.tokens[i]))
            if not own and not guard_fired:
                out.append(
                    Violation(
                        2,
                        "FIFO: a healthy group stopped by another group's failure",
                        f"record {i} ({group}) handed back unrun, its group had no failure, no deadline",
                    )
                )
            stopped[group] = i
    if guard_fired:
        out += _check_lanes_busy(trace)
    return out


#: The cause of a lane that sat idle with work left: a timing cause (explore.py confirms it at a slower scale).
STALL = "FIFO: a lane sat idle while its next record waited for the deadline"
#: Real seconds a lane may take to go from one record's answer to the next record's start.
STALL_SLACK = 0.05


def _lanes(trace: Trace) -> list[list[int]]:
    """The records of each lane, in event order: one lane per message group, groups that share a token joined."""
    parent: dict[str | None, str | None] = {}

    def root(group: str | None) -> str | None:
        while parent.get(group, group) != group:
            group = parent[group]
        return group

    first_group: dict[str, str | None] = {}
    for i, r in enumerate(trace.schedule.records):
        token = trace.tokens[i]
        if token is None:
            continue
        if token in first_group:
            parent[root(r.group)] = root(first_group[token])
        else:
            first_group[token] = r.group
    lanes: dict[str | None, list[int]] = {}
    for i, r in enumerate(trace.schedule.records):
        lanes.setdefault(root(r.group), []).append(i)
    return list(lanes.values())


def _check_lanes_busy(trace: Trace) -> list[Violation]:
    """Liveness: a lane whose record's answer was settled starts its next record at once, not at the deadline.

    The first record of a lane that the deadline guard handed back unrun is looked at: if the record before it ran,
    and its answer landed (or found the task closed) long before the guard fired, the lane sat idle with work
    left, which invariant 2 alone cannot see (a hand-back at the deadline is allowed).
    """
    s, scale = trace.schedule, trace.scale
    assert trace.deadline is not None
    guard = trace.deadline - s.margin * scale
    for lane in _lanes(trace):
        for previous, i in itertools.pairwise(lane):
            if i not in trace.handed_back or i in trace.runs.by_record:
                continue
            r = s.records[i]
            stopped = any(j in trace.handed_back and s.records[j].group == r.group for j in lane if j < i)
            if stopped or r.kind != "real" or r.shape == "deep":
                break  # handed back for a reason of its own or of its group's, not for want of a turn
            runs = trace.runs.by_record.get(previous)
            calls = _calls(trace, trace.tokens[previous])
            done = [c.end for c in calls if c.completion and (c.landed or c.result in CLOSED) and c.end is not None]
            if runs and runs[-1].ended is not None and done:
                free = max(runs[-1].ended, max(done))
                if guard - free > STALL_SLACK:
                    return [Violation(2, STALL, f"record {i} waited from {_t(trace, free)} to {_t(trace, guard)}")]
            break  # the lane's later records waited behind this one
    return []


def _handed_at(trace: Trace, i: int) -> float:
    runs = trace.runs.by_record.get(i)
    if runs and runs[0].ended is not None:
        return runs[0].ended
    return trace.t_start


def check_no_double_work(trace: Trace) -> list[Violation]:
    """3: no completion starts after the return; a handed-back record is not answered too."""
    if trace.t_return is None or trace.schedule.over_http:
        # Through a real client the fake sees a call when its request arrives, and a client-side timeout it cannot
        # see may have made any landing ambiguous: only ambiguous_records() counts these runs.
        return []
    out: list[Violation] = []
    ret = trace.t_return
    tokens = {t for t in trace.tokens if t is not None}
    for c in trace.fake.calls:
        if c.completion and c.token in tokens and c.start > ret:
            out.append(
                Violation(3, f"{c.api} started after the return", f"at {_t(trace, c.start)}, return {_t(trace, ret)}")
            )
            break
    for token in tokens:
        records = [i for i, t in enumerate(trace.tokens) if t == token]
        if not all(i in trace.handed_back for i in records):
            continue
        calls = _calls(trace, token)
        landed = [c for c in calls if c.completion and c.landed]
        if not landed:
            continue
        c = landed[0]
        assert c.landed_at is not None
        if _ambiguous(calls):
            continue  # the library could not know it landed: counted as ambiguous, not as a violation
        when = "after" if c.landed_at > ret else "before"
        out.append(
            Violation(
                3,
                f"handed back, and its completion landed {when} the return",
                f"record(s) {records}: {c.api} started at {_t(trace, c.start)} with timeout {_span(trace, c.timeout)}, "
                f"landed at {_t(trace, c.landed_at)}, return at {_t(trace, ret)}",
            )
        )
    return out


def ambiguous_records(trace: Trace) -> int:
    """Handed-back records whose completion landed behind an ambiguous error (unknowable to the library)."""
    n = 0
    for token in {t for t in trace.tokens if t is not None}:
        records = [i for i, t in enumerate(trace.tokens) if t == token]
        calls = _calls(trace, token)
        if all(i in trace.handed_back for i in records) and any(c.completion and c.landed for c in calls):
            n += trace.schedule.over_http or _ambiguous(calls)
    return n


def check_in_time(trace: Trace) -> list[Violation]:
    """4: the handler returns before the deadline; completions near the deadline carry a timeout that fits."""
    if trace.schedule.driver == "activity" or trace.deadline is None or trace.t_return is None:
        return []
    if trace.schedule.over_http:
        return []  # real HTTP round trips and client set-up do not shrink with the scale: time means nothing here
    out: list[Violation] = []
    deadline = trace.deadline
    if trace.t_return > deadline + SLACK:
        late = (trace.t_return - deadline) / trace.scale
        out.append(Violation(4, "handler returned after the deadline", f"{late:.2f}s late"))
    near = deadline - trace.schedule.margin * trace.scale
    tokens = {t for t in trace.tokens if t is not None}
    for c in trace.fake.calls:
        if not c.completion or c.token not in tokens or c.start < near or c.start > trace.t_return:
            continue
        if c.timeout is None:
            out.append(
                Violation(4, "completion near the deadline without a timeout", f"{c.api} at {_t(trace, c.start)}")
            )
            break
        # The timeout counts from when the caller asked for it (a thread can be preempted before the call starts).
        ends = (c.issued if c.issued is not None else c.start) + c.timeout
        if ends > deadline + SLACK:
            over = (ends - deadline) / trace.scale
            out.append(Violation(4, "completion timeout ends after the deadline", f"{c.api}: {over:.2f}s over"))
            break
    return out


def check_workers_alive(trace: Trace) -> list[Violation]:
    """5: every slot still polls after the schedule, and the worker's stats equal what the fake saw."""
    s = trace.schedule
    if s.driver != "activity":
        return []
    out: list[Violation] = []
    if trace.slot_deaths:
        out.append(Violation(5, "run_one let a BaseException out", f"{trace.slot_deaths} slot(s) would have died"))
    if trace.slots_polling is not None and trace.slots_polling < s.concurrency:
        out.append(
            Violation(5, "a slot stopped polling", f"{trace.slots_polling} of {s.concurrency} slots polling at the end")
        )
    if not trace.finished:
        out.append(Violation(5, "worker did not stop", "wait() timed out or work never settled"))
    if trace.stats is not None:
        out += _check_stats(trace)
    return out


def _truth(trace: Trace, token: str) -> list[str]:
    """The worker counters one delivered activity task must have moved, by what the fake saw."""
    calls = _calls(trace, token)
    landed = [c for c in calls if c.completion and c.landed]
    if landed:
        c = landed[0]
        if c.api == "SendTaskSuccess":
            return ["succeeded"]
        extra = {ERROR_TASK_TIMEOUT: ["timed_out"], ERROR_WORKER_SHUTDOWN: ["shut_down"]}.get(c.error or "", [])
        return ["failed", *extra]
    if any(c.completion for c in calls):
        # The worker sent an answer, so it did not count the task handed off, even if the function handed the
        # token off before a time limit or shutdown claimed it: it counts the answer's fate.
        return ["closed"] if any(c.result in CLOSED for c in calls) else ["undeliverable"]
    index = trace.tokens.index(token)
    if any(r.how == "handed_off" for r in trace.runs.by_record.get(index, [])):
        return ["handed_off"]
    if any(c.result in CLOSED for c in calls):
        return ["closed"]
    return []


def _closed_verdict_unheard(calls: list[CallRecord]) -> bool:
    """A heartbeat said "closed" while the task's completion was already on its way, and no completion heard it.

    The worker unregisters a task's heartbeats before it sends the completion and ignores a verdict that comes back
    after that (it could be the echo of its own completion). If that completion then meets a fault that comes
    before Step Functions looks at the task (throttling, KMS), the worker rightly counts the task undeliverable,
    although the fake knows it was closed.
    """
    completions = [c for c in calls if c.completion]
    if not completions or any(c.result in CLOSED or c.landed for c in completions):
        return False
    first = min(c.start for c in completions)
    return any(c.api in HEARTBEATS and c.result in CLOSED and c.start <= first for c in calls)


def _check_stats(trace: Trace) -> list[Violation]:
    stats = trace.stats
    fake = trace.fake
    keys = ("succeeded", "failed", "closed", "undeliverable", "handed_off", "timed_out", "shut_down")
    want: dict[str, int] = dict.fromkeys(keys, 0)
    loose = 0
    for token in set(fake.delivered):
        calls = _calls(trace, token)
        # Through a real client every lost response looks alike (a dropped connection): any fault may mislead it.
        unclear = trace.schedule.over_http and any(c.completion and c.result not in ("ok", *CLOSED) for c in calls)
        if unclear or _ambiguous(calls):
            loose += 1  # landed behind an ambiguous error, or not: the worker may count it either way
            continue
        if _closed_verdict_unheard(calls):
            loose += 1  # closed by the fake, but the worker had stopped listening: closed or undeliverable
            continue
        for key in _truth(trace, token):
            want[key] += 1
    out: list[Violation] = []
    for key in keys:
        got = getattr(stats, key)
        if not want[key] <= got <= want[key] + loose:
            out.append(
                Violation(5, f"stats.{key} differs from what the fake saw", f"stats {got}, fake saw {want[key]}")
            )
    # A user's client that retries makes several attempts of one call: the worker counts calls, the fake attempts.
    retried = trace.schedule.user_client == "retries"
    beats = sum(1 for c in fake.calls if c.api == "SendTaskHeartbeat")
    if not (stats.heartbeats <= beats if retried else stats.heartbeats == beats):
        out.append(Violation(5, "stats.heartbeats differs", f"stats {stats.heartbeats}, fake saw {beats}"))
    if not trace.schedule.run_one:
        if stats.started + _refused(trace) != len(fake.delivered):
            out.append(Violation(5, "stats.started differs", f"stats {stats.started}, delivered {len(fake.delivered)}"))
        if not (stats.poll_errors <= fake.poll_errors if retried else stats.poll_errors == fake.poll_errors):
            out.append(Violation(5, "stats.poll_errors differs", f"stats {stats.poll_errors}, fake {fake.poll_errors}"))
    return out


def _refused(trace: Trace) -> int:
    """Tasks a poll handed over after the stop: answered WorkerShutdown without being started."""
    n = 0
    for token in trace.fake.delivered:
        completions = [c for c in _calls(trace, token) if c.completion]
        if completions and all(c.error == ERROR_WORKER_SHUTDOWN for c in completions):
            n += trace.tokens.index(token) not in trace.runs.by_record
    return n


def check_no_token_leak(trace: Trace) -> list[Violation]:
    """6: no raw token (nor a 24-character slice of one) in any log line captured during the schedule."""
    for token in {t for t in trace.tokens if t is not None}:
        probes = {token, *(token[k : k + 24] for k in range(0, len(token) - 24, 97))}
        for line in trace.logs:
            if any(p in line for p in probes):
                shown = line.replace(token, fingerprint(token))[:160].replace("\n", " ")
                return [Violation(6, "raw token in a log line", shown)]
    return []


def check_users_client(trace: Trace) -> list[Violation]:
    """4: a client the user passed is the client every call goes through, with everything configured on it."""
    if trace.schedule.user_client is None:
        return []
    if trace.foreign_calls:
        return [Violation(4, "a call bypassed the user's client", f"{trace.foreign_calls} call(s) without its hooks")]
    # The logs are the whole process's: a certificate error counts only when it names this schedule's endpoint
    # (its path is the schedule's own), not another schedule's client nor a thread some other test left running.
    url = trace.endpoint_url
    if trace.schedule.user_client == "verify" and url:
        for line in trace.logs:
            if "CERTIFICATE_VERIFY_FAILED" in line and url in line:
                return [Violation(4, "a call lost the user's client's verify=", line[:300])]
    return []


CHECKERS: tuple[Callable[[Trace], list[Violation]], ...] = (
    check_one_answer,
    check_nothing_dropped,
    check_no_double_work,
    check_in_time,
    check_users_client,
    check_workers_alive,
    check_no_token_leak,
)


def check(trace: Trace) -> list[Violation]:
    """Every invariant's violations for one trace."""
    return [v for checker in CHECKERS for v in checker(trace)]
