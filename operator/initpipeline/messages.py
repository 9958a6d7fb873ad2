"""The text the generated scripts print that the operator reads back: one owner per format.

Each format has its writer here (the shell snippet or constant `scripts` puts into a
script) next to its reader (the parser `status` calls), so the two cannot drift; the unit
tests run the real scripts under busybox and parse their output with these readers.

Formats:

- Progress lines on stdout: `waiting: <label>: <why>` (`SAY_SH`), when a failed attempt's
  reason changed (and every 20th attempt).
  Targets checked by the operator print `waiting: <label>: checked by the operator`
  (`OPERATOR_PLACEHOLDER`) while the Pod waits for its release; that line only tells a
  `kubectl logs` reader who checks the target, so `wait_report` drops it: the operator's
  own finding is what the status shows. Read by `wait_report` / `report_lines`.
- WaitTimeout termination message (wait and download steps, exit WAIT_TIMEOUT_EXIT_CODE):
  `WaitTimeout: <labels, comma separated> not met after <N>s[: <last error>]`
  (`wait_timeout_sh`); read by `parse_wait_timeout`, told to users by `timed_out`
  as `timed out after <N>s waiting for <labels>[ (last error: <error>)]` (a download's
  through `failure_detail`, next to its exit code).
- ChecksumMismatch termination message (download with sha256, exit 1):
  `ChecksumMismatch: sha256 of <url> is <actual>, expected <expected>`
  (`checksum_mismatch_sh`); read by `termination_reason` (the step's reason becomes
  ChecksumMismatch), `parse_checksum_mismatch`, and `failure_detail` (the message
  without its reason, for the Ready message).
- renderConfig termination messages (written by `renderconfig`, the step's container):
  `rendered <label> (<bytes> bytes, mode <octal>)[ with <names>]` (`rendered`);
  `MissingVariable: ${NAME} (line N) is not in env[; ...]` or `... is not set: its optional
  source is missing` (`missing_variables`, exit 1); `InvalidTemplate: line N: ...`
  (`invalid_template`, exit 1); `RenderConfig: cannot write <label>: <why>` (`render_failed`).
  MissingVariable and InvalidTemplate become the step's reason (`termination_reason`).
  They name variables, never a value.
- Operator findings (`waitingOn` entries for API-side targets, written by `deps`):
  `<label>: <why>`, the shape of a progress line without its `waiting: ` prefix
  (`finding`); the whys are the constants and functions of that section. Read back by
  `finding_label` (`status.held`: a target of a step with no finding holds) and
  `finding_why`; `is_refusal` tells the whys of targets not checked for the pipeline
  (`graph`: a refused edge).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# Where every generated container writes its one-line result (the kubelet's default path).
TERMINATION_LOG: Final = "/dev/termination-log"
WAITING_PREFIX: Final = "waiting:"
OPERATOR_PLACEHOLDER: Final = "checked by the operator"
WAIT_TIMEOUT: Final = "WaitTimeout"
CHECKSUM_MISMATCH: Final = "ChecksumMismatch"
MISSING_VARIABLE: Final = "MissingVariable"
INVALID_TEMPLATE: Final = "InvalidTemplate"
MAX_WAITING_ON: Final = 20

# --------------------------------------------------------------------------- progress lines

# say LABEL WHY: one progress line.
SAY_SH: Final = 'say() { printf \'waiting: %s: %s\\n\' "$1" "$2"; }\n'


def say_placeholder_sh(quoted_label: str) -> str:
    """The line an operator-checked target prints while the Pod waits for its release."""
    return f"  say {quoted_label} '{OPERATOR_PLACEHOLDER}'\n"


def _target_and_why(line: str) -> tuple[str, str]:
    target, _, why = line.removeprefix(WAITING_PREFIX).strip().partition(": ")
    return target, why


def is_placeholder(entry: str) -> bool:
    """`[waiting: ]<label>: checked by the operator`: no finding, only who checks."""
    return _target_and_why(entry.strip())[1] == OPERATOR_PLACEHOLDER


def wait_report(log: str) -> str | None:
    """The last round of `waiting: <target>: <why>` lines in the tail of a wait container's log.

    Only the trailing run of `waiting:` lines counts (any other line, e.g. `ok: ...`, ends a
    run); within it a target seen again starts a new round, so only the latest line per
    target remains. The target is the text before the first ": " (as `Target.describe()`
    writes it). Placeholder lines of operator-checked targets are left out. Returns the
    lines joined by newlines, or None when none remain.
    """
    run: list[str] = []
    for line in log.splitlines():
        line = line.strip()
        if line.startswith(WAITING_PREFIX):
            run.append(line)
        elif line:
            run = []
    round_: dict[str, str] = {}
    for line in run:
        if is_placeholder(line):
            continue
        key = _target_and_why(line)[0]
        if key in round_:
            round_ = {}
        round_[key] = line
    lines = list(round_.values())[-MAX_WAITING_ON:]
    return "\n".join(lines) if lines else None


def report_lines(text: str | None) -> list[str]:
    """The entries of a `wait_report` as `<target>: <why>`, placeholders left out."""
    lines = []
    for line in (text or "").splitlines():
        line = line.strip()
        if is_placeholder(line):
            continue
        line = line.removeprefix(WAITING_PREFIX).strip()
        if line:
            lines.append(line)
    return lines


# --------------------------------------------------------------------------- WaitTimeout


def wait_timeout_sh(labels: str, seconds: int, detail: str = "") -> str:
    """A double-quoted shell word: the WaitTimeout message.

    labels, detail: shell text valid inside double quotes (e.g. `$missing`, `${why:+: $why}`,
    or a quoted word spliced in as `"'text'"`).
    """
    return f'"{WAIT_TIMEOUT}: {labels} not met after {seconds}s{detail}"'


_WAIT_TIMEOUT: Final = re.compile(
    rf"^{WAIT_TIMEOUT}: (?P<labels>.+?) not met after (?P<seconds>\d+)s(?:: (?P<detail>.*))?$"
)


@dataclass(frozen=True)
class WaitTimedOut:
    labels: str  # `tcp db:5432, dns cache`, as the script wrote them
    seconds: int
    detail: str = ""  # a download's last error


def parse_wait_timeout(message: str | None) -> WaitTimedOut | None:
    """The WaitTimeout termination message, or None when `message` is not one."""
    found = _WAIT_TIMEOUT.match((message or "").strip())
    if found is None:
        return None
    return WaitTimedOut(found["labels"], int(found["seconds"]), found["detail"] or "")


def timed_out(timeout: WaitTimedOut) -> str:
    """What users read: `timed out after 5s waiting for tcp db:5432`."""
    text = f"timed out after {timeout.seconds}s waiting for {timeout.labels}"
    return f"{text} (last error: {timeout.detail})" if timeout.detail else text


# --------------------------------------------------------------------------- ChecksumMismatch


def checksum_mismatch_sh(quoted_url: str, actual: str, expected: str) -> str:
    """A shell word: the ChecksumMismatch message (`actual`/`expected`: shell expressions
    valid inside double quotes, e.g. `$got`)."""
    return f'"{CHECKSUM_MISMATCH}: sha256 of "{quoted_url}" is {actual}, expected {expected}"'


_CHECKSUM: Final = re.compile(
    rf"^{CHECKSUM_MISMATCH}: sha256 of (?P<url>.+) is (?P<actual>[0-9a-f]*), "
    r"expected (?P<expected>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class ChecksumMismatch:
    url: str
    actual: str
    expected: str


def parse_checksum_mismatch(message: str | None) -> ChecksumMismatch | None:
    found = _CHECKSUM.match((message or "").strip())
    if found is None:
        return None
    return ChecksumMismatch(found["url"], found["actual"], found["expected"])


def termination_reason(message: str | None) -> str | None:
    """The reason a script's termination message gives for a failed step, if any.

    (A timed-out wait step is told by its exit code, WAIT_TIMEOUT_EXIT_CODE.)
    """
    if parse_checksum_mismatch(message) is not None:
        return CHECKSUM_MISMATCH
    text = (message or "").strip()
    return next(
        (r for r in (MISSING_VARIABLE, INVALID_TEMPLATE) if text.startswith(f"{r}: ")), None
    )


def failure_detail(reason: str | None, message: str | None) -> str:
    """A failed step's message as the Ready message tells it, next to the exit code and
    reason: without the `<reason>: ` its script put in front (`ChecksumMismatch: sha256
    of ...` -> `sha256 of ...`), and a download's WaitTimeout as `timed_out` says it."""
    text = message or ""
    prefixed = (CHECKSUM_MISMATCH, MISSING_VARIABLE, INVALID_TEMPLATE)
    if reason in prefixed and text.startswith(f"{reason}: "):
        return text[len(f"{reason}: ") :]
    if (timeout := parse_wait_timeout(text)) is not None:
        return timed_out(timeout)
    return text


# --------------------------------------------------------------------------- renderConfig


def rendered(label: str, size: int, mode: int, names: Sequence[str]) -> str:
    """A renderConfig step's result: `rendered volume config/nginx.conf (312 bytes, mode
    0644) with SERVER_NAME, PORT` (the variables it used, never their values)."""
    text = f"rendered {label} ({size} bytes, mode {mode:04o})"
    return f"{text} with {', '.join(names)}" if names else text


def missing_variables(missing: Sequence[tuple[str, int, bool]]) -> str:
    """`MissingVariable: ${DB_HOST} (line 3) is not in env; ...` for each (name, line of its
    first use, whether env declares it) of the variables without a value."""
    whys = [
        f"${{{name}}} (line {line}) "
        + ("is not set: its optional source is missing" if declared else "is not in env")
        for name, line, declared in missing
    ]
    return f"{MISSING_VARIABLE}: " + "; ".join(whys)


def invalid_template(detail: str) -> str:
    """`InvalidTemplate: line 2: ...`: the template itself cannot be read."""
    return f"{INVALID_TEMPLATE}: {detail}"


def render_failed(label: str, why: str) -> str:
    """The rendered file could not be written (a read-only volume, no permission ...)."""
    return f"RenderConfig: cannot write {label}: {why}"


# --------------------------------------------------------------------------- operator findings

NOT_CHECKED_YET: Final = "not checked yet"
SERVICE_MISSING: Final = "service does not exist"
NO_READY_ENDPOINTS: Final = "no ready endpoints"
JOB_MISSING: Final = "job does not exist"
JOB_NOT_COMPLETE: Final = "job not complete"
OBJECT_MISSING: Final = "does not exist"
NAMESPACES_SETTING: Final = "INITPIPELINE_NAMESPACES"


def finding(label: str, why: str) -> str:
    """One waitingOn entry of the operator: `service mydb: no ready endpoints`."""
    return f"{label}: {why}"


def finding_label(entry: str) -> str:
    """The target label of a `finding` (the text before the first ": ")."""
    return _target_and_why(entry.strip())[0]


def finding_why(entry: str) -> str:
    """The why of a `finding` (the text after the first ": ")."""
    return _target_and_why(entry.strip())[1]


# The whys of targets the operator will not check for this pipeline (tenancy, scope).
NOT_CHECKED: Final = "not checked: "
REVIEW_FAILED: Final = f"{NOT_CHECKED}the access review failed"


def is_refusal(why: str) -> bool:
    """A why that says the target is not checked for this pipeline (not allowed, not
    watched); a failed access review is retried, so it is no refusal."""
    return why.startswith(NOT_CHECKED) and not why.startswith(REVIEW_FAILED)


def job_failed(reason: str) -> str:
    return f"job failed ({reason})"


def job_gone(revision: str) -> str:
    """A Job that completed for an earlier spec revision and has been deleted since: told
    apart from one never seen (`JOB_MISSING`)."""
    return f"job is gone: it completed for an earlier spec revision ({revision})"


def not_served(api_version: str, kind: str) -> str:
    return f"{api_version} {kind} is not served by the API server"


def no_condition(condition: str) -> str:
    return f"no {condition} condition yet"


def condition_not_true(condition: str, status: object, reason: str) -> str:
    return f"{condition} is {status} {reason}"


def not_watched(namespace: str) -> str:
    """A target in a namespace outside INITPIPELINE_NAMESPACES."""
    return f"{NOT_CHECKED}the operator does not watch namespace {namespace} ({NAMESPACES_SETTING})"


def cluster_scoped_not_watched(resource: str) -> str:
    """A cluster-scoped target while the operator watches some namespaces only."""
    return (
        f"{NOT_CHECKED}{resource} are cluster-scoped and the operator watches only "
        f"some namespaces ({NAMESPACES_SETTING})"
    )


def access_refused(service_account: str, verb: str, resource: str, namespace: str) -> str:
    """A SubjectAccessReview said no. Says nothing about the object itself (whether it
    exists), only what the Pods' ServiceAccount may not do; `namespace` "" for a
    cluster-scoped kind. `resource` is `plural[.group]` (`deployments.apps`)."""
    where = f" in {namespace}" if namespace else ""
    return f"{NOT_CHECKED}serviceaccount {service_account} may not {verb} {resource}{where}"


def access_review_failed(error: str) -> str:
    """The SubjectAccessReview itself failed (retried): the target stays unchecked."""
    return f"{REVIEW_FAILED} ({error})"
