"""How the timing metrics' values reach powertools: the contract ``add_values`` holds powertools to."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from callback_kit.observe.metrics import MAX_SAMPLES, add_values
from tests.observe.conftest import emf_documents, values


def test_every_value_reaches_the_emf_document_in_order(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the most timing values one flush writes
    durations = [float(v) for v in range(MAX_SAMPLES)]
    # WHEN they are added at once and the metrics flushed
    add_values(metrics, "TaskDuration", "Milliseconds", durations)
    metrics.add_dimension(name="Source", value="sqs")
    metrics.flush_metrics()
    # THEN one document carries them all, with the unit powertools checked on the first
    [document] = emf_documents(capsys.readouterr().out)
    assert values(document, "TaskDuration") == durations
    [definition] = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    assert definition["Unit"] == "Milliseconds"


def test_a_bad_unit_is_refused_as_add_metric_refuses_it(metrics: Metrics) -> None:
    # GIVEN a unit CloudWatch does not know WHEN values are added with it THEN powertools' own error comes out
    with pytest.raises(Exception, match="unit"):
        add_values(metrics, "TaskDuration", "Fortnights", [1.0, 2.0])


class _Plain:
    """A metrics object with add_metric only (no metric_set to append to): every value must be a call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def add_metric(self, *, name: str, unit: str, value: float) -> None:
        self.calls.append((name, unit, value))


def test_without_the_metric_set_every_value_is_an_add_metric_call() -> None:
    # GIVEN a metrics object that is not powertools' (or a powertools whose metric set changed shape)
    plain = _Plain()
    # WHEN values are added
    add_values(plain, "TaskDuration", "Milliseconds", [1.0, 2.0, 3.0])
    # THEN each went through add_metric
    assert plain.calls == [("TaskDuration", "Milliseconds", v) for v in (1.0, 2.0, 3.0)]
