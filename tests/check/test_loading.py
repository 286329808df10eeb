"""Reading templates and ASL: YAML short-form intrinsics, JSON, substitutions resolved as far as they can be."""

from __future__ import annotations

from pathlib import Path

import pytest

from callback_kit.check import UnreadableInputError, check_paths
from callback_kit.check.intrinsics import Resolver
from callback_kit.check.loader import kind_of, parse_text


def test_yaml_short_form_intrinsics_become_the_long_form() -> None:
    text = """
    A: !Ref Queue
    B: !GetAtt Queue.Arn
    C: !Sub "${Queue}/x"
    D: !Sub ["${X}-y", {X: !Ref Bus}]
    E: !Join [":", [a, !Ref Bus]]
    F: !If [Cond, 1, 2]
    """
    assert parse_text(text) == {
        "A": {"Ref": "Queue"},
        "B": {"Fn::GetAtt": ["Queue", "Arn"]},
        "C": {"Fn::Sub": "${Queue}/x"},
        "D": {"Fn::Sub": ["${X}-y", {"X": {"Ref": "Bus"}}]},
        "E": {"Fn::Join": [":", ["a", {"Ref": "Bus"}]]},
        "F": {"Fn::If": ["Cond", 1, 2]},
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "AWS::Partition"}, "aws"),
        ({"Ref": "Beat"}, "20"),
        ({"Ref": "NoDefault"}, None),
        ({"Ref": "Queue"}, "ck-ref:Queue"),
        ({"Ref": "Activity"}, "arn:aws:states:us-east-1:123456789012:activity:ck-ref:Activity"),
        ({"Fn::GetAtt": "Queue.Arn"}, "ck-ref:Queue.Arn"),
        (
            {"Fn::Sub": "arn:${AWS::Partition}:states:::x ${!Literal} ${Queue.Arn}"},
            "arn:aws:states:::x ${Literal} ck-ref:Queue.Arn",
        ),
        ({"Fn::Sub": ["${X}/${Beat}", {"X": {"Ref": "Queue"}}]}, "ck-ref:Queue/20"),
        ({"Fn::Join": ["-", ["a", {"Ref": "Beat"}]]}, "a-20"),
        ({"Fn::Join": ["-", ["a", {"Fn::ImportValue": "x"}]]}, None),
        ({"Fn::If": ["C", "a", "b"]}, None),
    ],
)
def test_values_resolve_as_far_as_a_template_allows(value: object, expected: str | None) -> None:
    resolver = Resolver(
        {
            "Parameters": {"Beat": {"Type": "Number", "Default": 20}, "NoDefault": {"Type": "String"}},
            "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}, "Activity": {"Type": "AWS::StepFunctions::Activity"}},
        }
    )
    assert resolver.text(value) == expected


def test_asl_in_yaml_is_checked(tmp_path: Path) -> None:
    # GIVEN a standalone *.asl.yaml state machine in JSONata whose task passes no token
    (tmp_path / "x.asl.yaml").write_text(
        """
        QueryLanguage: JSONata
        StartAt: Ask
        States:
          Ask:
            Type: Task
            Resource: arn:aws:states:::lambda:invoke.waitForTaskToken
            Arguments: {FunctionName: f, Payload: "{% $states.input %}"}
            TimeoutSeconds: 300
            HeartbeatSeconds: 90
            Catch: [{ErrorEquals: [States.ALL], Next: Done}]
            Next: Done
          Done: {Type: Succeed}
        """.replace("\n        ", "\n")
    )
    # WHEN its directory is checked  THEN CK003 is found in it
    assert [(f.code, f.where) for f in check_paths([tmp_path])] == [("CK003", "Ask")]


def test_kinds_and_unreadable_files(tmp_path: Path) -> None:
    assert kind_of({"AWSTemplateFormatVersion": "2010-09-09", "Resources": {}}) == "template"
    assert kind_of({"StartAt": "A", "States": {}}) == "asl"
    assert kind_of("text") is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnreadableInputError, match=r"no template\.yaml"):
        check_paths([tmp_path / "empty"])
    (tmp_path / "binary.asl.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UnreadableInputError, match="cannot read"):
        check_paths([tmp_path / "binary.asl.json"])
