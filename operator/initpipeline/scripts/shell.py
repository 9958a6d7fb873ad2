"""What every generated script shares: quoting, labels, and the shell prelude (SIGTERM
handling, `run`, progress and result output)."""

from __future__ import annotations

import re
import shlex
from typing import Final

from initpipeline import messages
from initpipeline.names import SIGNAL_DIR, SIGNAL_FILE, TOOLS_DIR
from initpipeline.spec import ObjectRef, Target

TERMINATION_LOG: Final = messages.TERMINATION_LOG
SIGNAL_PATH: Final = f"{SIGNAL_DIR}/{SIGNAL_FILE}"
BUSYBOX: Final = f"{TOOLS_DIR}/busybox"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote(text: str | int) -> str:
    return shlex.quote(str(text))


def display(text: str) -> str:
    """A user string made safe for a one-line message (control characters become '?')."""
    return _CONTROL.sub("?", text)


def label(target: Target) -> str:
    """The label of a target in progress lines and messages: `Target.describe()`, one line."""
    return display(target.describe())


def service_host(target: Target) -> str:
    """The DNS name a `service` target's `port` is checked on: `name`, or `name.ns.svc`."""
    assert target.service is not None
    return ObjectRef.parse(target.service, None).host


# Every script: `run CMD...` runs CMD in the background and waits for it, so SIGTERM (the
# Pod is deleted) is acted on at once, not after a long command: `stop` kills the commands
# still running, calls the script's `tidy` and exits 143. (A shell defers traps until the
# foreground command ends, and as PID 1 of a container it ignores an untrapped SIGTERM.)
# A background command's output goes to "$scratch": the termination log, which the script
# overwrites with its result at the end (the root filesystem is read-only), or /dev/null.
_BASE: Final = """\
set -u
tlog={tlog}
scratch=$tlog
true 2>/dev/null >>"$scratch" || scratch=/dev/null
kids=''
tidy() { :; }
stop() {
  for kid in $kids; do kill "$kid" 2>/dev/null; done
  tidy
  exit 143
}
trap stop TERM INT
run() {
  "$@" &
  kid=$!
  kids="$kids $kid"
  wait "$kid"
  rc=$?
  kids=${kids% "$kid"}
  return "$rc"
}
"""

_PRELUDE: Final = f"""\
start=$(date +%s)
{messages.SAY_SH}finish() {{ printf '%s\\n' "$1"; printf '%s\\n' "$1" 2>/dev/null >"$tlog" || :; }}
last() {{
  printf '%s\\n' "$1" | sed -e '/^[[:space:]]*$/d' -e '/^body:/d' -e 's/^[a-z_]*: //' \\
    -e "s/^can't connect to remote host ([^)]*): //" | tail -n 1 | cut -c 1-200
}}
unmet() {{
  for label in "$@"; do
    case ", $missing, " in
      *", $label, "*) ;;
      *) missing="${{missing:+$missing, }}$label" ;;
    esac
  done
}}
"""


def base(termination_log: str) -> str:
    return _BASE.replace("{tlog}", quote(termination_log))


def prelude(termination_log: str) -> str:
    return base(termination_log) + _PRELUDE


FAIL: Final = (
    """fail() { printf '%s\\n' "$1" >&2; printf '%s\\n' "$1" 2>/dev/null >"$tlog"; exit 1; }\n"""
)
