"""``callback-kit check`` over public sample state machines (tests/check/samples/README.md says where each is from).

The findings are pinned: a rule change that adds or drops one here must be a decision, recorded in docs/check.md's
"What it found in public samples", not an accident. No finding here is a false positive; each is explained there.
"""

from __future__ import annotations

from pathlib import Path

from callback_kit.check import check_paths

SAMPLES = Path(__file__).parent / "samples"

EXPECTED = [
    ("activity-state-machine/statemachine/activity_state.asl.json", "Step Functions Run Activity", "CK005"),
    ("aws-docs-connect-sqs-jsonata/send-message-wait.asl.json", "Send message to SQS", "CK001"),
    ("aws-docs-connect-sqs-jsonata/send-message-wait.asl.json", "Send message to SQS", "CK002"),
    ("aws-docs-connect-sqs-jsonata/send-message-wait.asl.json", "Send message to SQS", "CK005"),
    (
        "calling-async-api-callback/statemachine/workflow_AsyncAPICallbackPattern.asl.json",
        "Invoke Async API & Wait For CallBack",
        "CK002",
    ),
    ("calling-async-api-callback/template.yaml", "RequestorQueue", "CK007"),
    ("calling-async-api-callback/template.yaml", "WorkflowRequestorQueueConsumer/Events/SQS1", "CK007"),
    ("checkout-processing-workflow/checkout_workflow.asl.json", "Third Party Payment Service HTTPS Endpoint", "CK001"),
    ("checkout-processing-workflow/checkout_workflow.asl.json", "Third Party Payment Service HTTPS Endpoint", "CK002"),
    ("checkout-processing-workflow/checkout_workflow.asl.json", "Third Party Payment Service HTTPS Endpoint", "CK005"),
    ("checkout-processing-workflow/checkout_workflow.asl.json", "Third Party Shipping Service HTTPS Endpoint", "CK001"),
    ("checkout-processing-workflow/checkout_workflow.asl.json", "Third Party Shipping Service HTTPS Endpoint", "CK002"),
    ("checkout-processing-workflow/checkout_workflow.asl.json", "Third Party Shipping Service HTTPS Endpoint", "CK005"),
    ("human-in-the-loop-tf/statemachine.asl.json", "Notify Approver", "CK001"),
    ("human-in-the-loop-tf/statemachine.asl.json", "Notify Approver", "CK002"),
    ("human-in-the-loop-tf/statemachine.asl.json", "Notify Approver", "CK005"),
    ("human-in-the-loop/statemachine/statemachine.asl.json", "Notify Approver", "CK002"),
    ("human-in-the-loop/statemachine/statemachine.asl.json", "Notify Approver", "CK005"),
    ("localstack-callbacks/sns_publish_wait_for_task_token.asl.json", "Publish", "CK001"),
    ("localstack-callbacks/sns_publish_wait_for_task_token.asl.json", "Publish", "CK002"),
    ("localstack-callbacks/sns_publish_wait_for_task_token.asl.json", "Publish", "CK005"),
    ("localstack-callbacks/sqs_parallel_wait_for_task_token.asl.json", "ParallelJob/SendMessageWithWait", "CK001"),
    ("localstack-callbacks/sqs_parallel_wait_for_task_token.asl.json", "ParallelJob/SendMessageWithWait", "CK002"),
    ("localstack-callbacks/sqs_wait_for_task_token_no_token_parameter.asl.json", "State1", "CK002"),
    ("localstack-callbacks/sqs_wait_for_task_token_no_token_parameter.asl.json", "State1", "CK003"),
    ("localstack-callbacks/sqs_wait_for_task_token_no_token_parameter.asl.json", "State1", "CK005"),
    ("parallel-human-approval/statemachine/StateMachine.asl.json", "Parallel/SNS Publish to Approver 1", "CK001"),
    ("parallel-human-approval/statemachine/StateMachine.asl.json", "Parallel/SNS Publish to Approver 1", "CK002"),
    ("parallel-human-approval/statemachine/StateMachine.asl.json", "Parallel/SNS Publish to Approver2", "CK001"),
    ("parallel-human-approval/statemachine/StateMachine.asl.json", "Parallel/SNS Publish to Approver2", "CK002"),
    ("parallel-human-approval/statemachine/StateMachine.asl.json", "Parallel/SNS Publish to Approver3", "CK001"),
    ("parallel-human-approval/statemachine/StateMachine.asl.json", "Parallel/SNS Publish to Approver3", "CK002"),
    ("terraform-sqs-async/sqs_async.asl.json", "Process", "CK001"),
    ("terraform-sqs-async/sqs_async.asl.json", "Process", "CK002"),
    ("terraform-sqs-async/sqs_async.asl.json", "Process", "CK005"),
    ("terraform-sqs-async/sqs_async.asl.json", "Process", "CK008"),
    ("workshop-module-4/wait-for-callback.asl.json", "Start Task And Wait For Callback", "CK001"),
    ("workshop-module-4/wait-for-callback.asl.json", "Start Task And Wait For Callback", "CK002"),
]


def test_findings_on_public_samples_are_pinned() -> None:
    # GIVEN the directory of public samples (SAM templates with their ASL files, and ASL files alone)
    # WHEN the checker walks it
    findings = check_paths([SAMPLES])
    # THEN it finds exactly what docs/check.md records
    assert [(Path(f.path).relative_to(SAMPLES).as_posix(), f.where, f.code) for f in findings] == EXPECTED


def test_the_samples_hold_at_least_eight_state_machines_with_callback_tasks() -> None:
    # GIVEN every state machine kept here, read as the checker reads it (through its template where it has one)
    from callback_kit.check.asl import callback_kind, walk
    from callback_kit.check.loader import load_file
    from callback_kit.check.template import read_template

    definitions = {}
    for path in sorted(SAMPLES.rglob("*.asl.json")):
        definitions[path.resolve()] = load_file(path)
    for path in SAMPLES.rglob("template.yaml"):
        for machine in read_template(load_file(path), str(path)).machines:
            definitions[Path(machine.path).resolve()] = machine.definition
    # THEN at least eight of them have a callback task, and every sample directory has one
    with_callbacks = [p for p, d in definitions.items() if any(callback_kind(ref.state) for ref in walk(d))]
    assert len(with_callbacks) >= 8
    assert {p.relative_to(SAMPLES.resolve()).parts[0] for p in with_callbacks} == {
        p.name for p in SAMPLES.iterdir() if p.is_dir()
    }
