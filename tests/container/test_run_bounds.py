"""``callback-kit run`` holds bounded memory whatever the command writes, and judges output as Lambda does."""

from __future__ import annotations

import io
import json
import os
import sys
import tracemalloc

from callback_kit.container import RunStatus, run_command
from callback_kit.container.streams import STDERR_CHUNK_BYTES, StderrRelay
from callback_kit.exceptions import ERROR_INVALID_COMMAND_OUTPUT
from callback_kit.logs import fingerprint
from callback_kit.outcome import MAX_OUTPUT_BYTES, encode_output
from callback_kit.testing import FakeStepFunctions

PY = sys.executable
MIB = 2**20


def test_a_150_mib_stderr_line_costs_bounded_memory() -> None:
    # GIVEN a command that writes 150 MiB of stderr on one line, then fails
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    code = "import sys; sys.stderr.write('x' * (150 << 20)); sys.stderr.flush(); sys.exit(3)"

    # WHEN it runs, its stderr passed on to a sink that keeps nothing, under tracemalloc
    with open(os.devnull, "w") as sink:
        tracemalloc.start()
        try:
            result = run_command([PY, "-c", code], token=token, client=sfn, heartbeat_interval=0, stderr=sink)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    # THEN the runner held a few pieces of the line at most, not the line, and the cause still has its end
    assert peak < 16 * MIB, f"peak {peak / MIB:.0f} MiB"
    assert result.status is RunStatus.FAILED
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[2]["errorMessage"].endswith("x" * 100)


def test_a_token_split_between_two_pieces_of_stderr_is_still_masked() -> None:
    # GIVEN stderr whose one long line holds the token across the boundary of two pieces
    token = "AQB" + "t" * 600
    before = "y" * (STDERR_CHUNK_BYTES - 300)
    out = io.StringIO()

    # WHEN it is relayed
    StderrRelay(token, out).relay(io.BytesIO(f"{before}{token} end\nnext {token}\n".encode()))

    # THEN both copies were masked, and everything else got through as written
    masked = fingerprint(token)
    assert out.getvalue() == f"{before}{masked} end\nnext {masked}\n"


def test_json_of_exactly_the_limit_printed_with_a_newline_is_accepted() -> None:
    # GIVEN a value whose JSON is exactly Step Functions' limit, which a Lambda function may return
    value = "x" * (MAX_OUTPUT_BYTES - 2)
    assert len(json.dumps(value)) == MAX_OUTPUT_BYTES
    assert encode_output(value).output  # type: ignore[union-attr]
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    # WHEN a command prints it with print() (a trailing newline)
    code = f"import json; print(json.dumps('x' * {MAX_OUTPUT_BYTES - 2}))"
    result = run_command([PY, "-c", code], token=token, client=sfn, heartbeat_interval=0)

    # THEN it is accepted as the Lambda path accepts it
    assert result.status is RunStatus.SUCCEEDED
    assert sfn.outcome(token) == ("success", value)


def test_pretty_printed_output_is_judged_by_its_compact_json() -> None:
    # GIVEN a command that pretty-prints a value whose compact JSON fits, though its printed form does not
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    code = "import json; print(json.dumps([1] * 70000, indent=4))"

    # WHEN it runs / THEN the value is sent
    result = run_command([PY, "-c", code], token=token, client=sfn, heartbeat_interval=0)
    assert result.status is RunStatus.SUCCEEDED
    assert sfn.outcome(token) == ("success", [1] * 70000)


def test_stdout_nested_too_deeply_is_invalid_output() -> None:
    # GIVEN a command whose stdout is JSON nested deeper than any decoder reads
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    code = "print('[' * 100000 + ']' * 100000)"

    # WHEN it runs / THEN the task fails with the documented error rather than the runner crashing
    result = run_command([PY, "-c", code], token=token, client=sfn, heartbeat_interval=0)
    assert (result.status, result.error) == (RunStatus.FAILED, ERROR_INVALID_COMMAND_OUTPUT)
