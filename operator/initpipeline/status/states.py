"""The words of the status: step states, the Ready condition's reasons, condition types."""

from __future__ import annotations

import enum


class StepState(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    READY = "Ready"  # sidecars only
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Reason(enum.StrEnum):
    """Reasons of the Ready condition (and of Reconciling/Stalled, which mirror it)."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"
    UNSUPPORTED_CLUSTER = "UnsupportedCluster"
    POD_CREATION_FAILED = "PodCreationFailed"
    PENDING = "Pending"
    WAITING_FOR_DEPENDENCY = "WaitingForDependency"
    INITIALIZING = "Initializing"
    STEP_FAILED = "StepFailed"
    WAIT_TIMEOUT = "WaitTimeout"
    POD_FAILED = "PodFailed"  # a main container failed the Pod (restartPolicy Never/OnFailure)
    DEADLINE_EXCEEDED = "DeadlineExceeded"  # start-up outlived spec.activeDeadlineSeconds


class ConditionType(enum.StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
