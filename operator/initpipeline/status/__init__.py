"""The InitPipeline `status`, derived from the pipeline and its Pods by pure functions.

Nothing here does I/O. The operator lists the Pods, runs its API-side wait checks, reads
the logs of the wait containers `wait_logs_to_read` names (`messages.wait_report`), then
calls `derive_status` (or `unparsed_status` when the spec does not parse), patches the
result when `status_changed` says so, and posts the `step_events` between the old and the
new status on the CR.

Read top to bottom, one reason to change each:

- `states`: the words (step states, Ready reasons, condition types);
- `text`: one-line messages (`one_line`, the length limits);
- `kubelet`: one container status -> one step;
- `once`: a `once` run step's Job (and its Pod) -> that step, in every Pod's view;
- `pods`: one Pod -> its steps; which Pods count and which one stands for the pipeline;
- `verdict`: Ready / Stalled / Reconciling and the message (the STATUS column);
- `conditions`: the verdict as metav1.Conditions;
- `derive`: the whole status;
- `events`: the Events between two statuses.

The formats the generated scripts write (progress lines, termination messages) are read
through `initpipeline.messages`, their owner.
"""

from initpipeline.status.derive import (
    derive_status,
    status_changed,
    unparsed_status,
    wait_logs_to_read,
)
from initpipeline.status.events import StepEvent, step_events
from initpipeline.status.states import ConditionType, Reason, StepState
from initpipeline.status.text import MAX_CONDITION_MESSAGE, MAX_MESSAGE, one_line
from initpipeline.status.verdict import Problems

__all__ = [
    "MAX_CONDITION_MESSAGE",
    "MAX_MESSAGE",
    "ConditionType",
    "Problems",
    "Reason",
    "StepEvent",
    "StepState",
    "derive_status",
    "one_line",
    "status_changed",
    "step_events",
    "unparsed_status",
    "wait_logs_to_read",
]
