"""The script of a waitFor step: every in-Pod target checked concurrently, API-side targets
waited for through the operator's release list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from initpipeline import messages
from initpipeline.names import WAIT_TIMEOUT_EXIT_CODE
from initpipeline.scripts.shell import (
    SIGNAL_PATH,
    TERMINATION_LOG,
    display,
    label,
    prelude,
    quote,
    service_host,
)
from initpipeline.spec import Step, Target, TargetKind

# Per-attempt limits (seconds): one check never blocks longer than this.
TCP_TIMEOUT: Final = 3
HTTP_TIMEOUT: Final = 10
DNS_TIMEOUT: Final = 10
COMMAND_TIMEOUT: Final = 60

# A check is tried again this long after it failed (seconds; every second where `sleep` takes
# no fractions), however long the step has waited: a dependency is noticed within about that.
POLL_SECONDS: Final = "0.5"
# After an attempt wakes the script's main loop, it looks again this soon: the check that sent
# the wake-up may still be exiting.
RECHECK_SECONDS: Final = "0.1"
# A failed attempt prints its `waiting:` line when the reason changed, and every this many
# attempts (about 10 s) while it stays the same.
QUIET_ATTEMPTS: Final = 20

# Each in-Pod check runs `poll CHECK LABEL` in a background subshell until it holds.
_POLL: Final = f"""\
pause={POLL_SECONDS}
recheck={RECHECK_SECONDS}
sleep 0.0 2>/dev/null || {{ pause=1; recheck=1; }}
poll() {{
  tries=0
  said=''
  while :; do
    loud=''
    [ $((tries % {QUIET_ATTEMPTS})) -ne 0 ] || loud=1
    "$1" && return 0
    if [ -n "$why" ] && {{ [ -n "$loud" ] || [ "$why" != "$said" ]; }}; then
      say "$2" "$why"
      said=$why
    fi
    tries=$((tries + 1))
    sleep "$pause"
  done
}}
# again OUTPUT: true when this failed attempt printed what the one before printed, so the
# `why` worked out then still holds and none of the processes that work it out run again.
again() {{
  if [ -n "${{seen+x}}" ] && [ "$1" = "$seen" ]; then return 0; fi
  seen=$1
  return 1
}}
"""


def _tcp_check(fn: str, host: str, port: int) -> str:
    return f"""\
{fn}() {{
  out=$(nc -w {TCP_TIMEOUT} {quote(host)} {quote(port)} -e true 2>&1 </dev/null) && return 0
  again "$out" && return 1
  why=$(last "$out")
  [ -n "$why" ] || why='no connection within {TCP_TIMEOUT}s'
  return 1
}}
"""


def _http_check(fn: str, target: Target) -> str:
    assert target.http is not None
    url = quote(target.http)
    if target.body_contains is None:
        fetch = f"out=$(timeout {HTTP_TIMEOUT} wget -S -q -O /dev/null {url} 2>&1 </dev/null)"
        body_test = ""
    else:
        needle = target.body_contains
        fetch = (
            f"out=$({{ timeout {HTTP_TIMEOUT} wget -S -q -O - {url} 2>&3 </dev/null"
            f" | {{ if grep -qF -e {quote(needle)}; then echo body:match;"
            " else echo body:nomatch; fi; cat >/dev/null; }; } 3>&1)"
        )
        missing = quote(f"body does not contain {display(needle)!r}")
        body_test = f"""\
  if ! printf '%s\\n' "$out" | grep -qx 'body:match'; then
    why="HTTP $code, "{missing}
    return 1
  fi
"""
    if target.expect_status is None:
        pattern, want = "2[0-9][0-9]", "2xx"
    else:
        pattern = want = str(target.expect_status)
    return f"""\
{fn}() {{
  {fetch}
  again "$out" && return 1
  code=$(printf '%s\\n' "$out" | sed -n 's/^ *HTTP\\/[0-9.]* \\([0-9][0-9]*\\).*/\\1/p' | tail -n 1)
  if [ -z "$code" ]; then
    why=$(last "$out")
    [ -n "$why" ] || why='no answer within {HTTP_TIMEOUT}s'
    return 1
  fi
  case "$code" in
    {pattern}) ;;
    *) why="HTTP $code, want {want}"; return 1 ;;
  esac
{body_test}  return 0
}}
"""


_HOSTS_AWK: Final = (
    'BEGIN { n = tolower(ENVIRON["name"]) } /^[ \\t]*#/ { next }'
    " { for (i = 2; i <= NF; i++) if (tolower($i) == n) f = 1 } END { exit !f }"
)


def _dns_check(fn: str, name: str) -> str:
    return f"""\
{fn}() {{
  name={quote(name)} awk {quote(_HOSTS_AWK)} /etc/hosts 2>/dev/null && return 0
  out=$(timeout {DNS_TIMEOUT} nslookup {quote(name)} 2>&1 </dev/null) && return 0
  again "$out" && return 1
  printf '%s\\n' "$out" | grep -q '^Name:' && return 0
  why=$(printf '%s\\n' "$out" | sed -n "s/^\\*\\* server can't find [^:]*: //p" | tail -n 1)
  [ -n "$why" ] || why=$(last "$out")
  [ -n "$why" ] || why='does not resolve'
  return 1
}}
"""


def _file_check(fn: str, path: str) -> str:
    return f"""\
{fn}() {{
  why='does not exist'
  [ -e {quote(path)} ]
}}
"""


def _command_check(fn: str, argv: Sequence[str]) -> str:
    words = " ".join(quote(word) for word in argv)
    return f"""\
{fn}() {{
  out=$(timeout -k 5 {COMMAND_TIMEOUT} {words} 2>&1 </dev/null)
  rc=$?
  [ "$rc" -eq 0 ] && return 0
  again "$rc $out" && return 1
  why="exit $rc"
  [ "$rc" -ne 143 ] || why='no exit within {COMMAND_TIMEOUT}s'
  detail=$(last "$out")
  [ -z "$detail" ] || why="$why: $detail"
  return 1
}}
"""


def _signal_check(fn: str, step_name: str, labels: Iterable[str], signal_path: str) -> str:
    says = "".join(messages.say_placeholder_sh(quote(text)) for text in labels)
    # `read`, a builtin: this check runs twice a second for as long as the step waits.
    return f"""\
{fn}() {{
  why=''
  released=''
  {{ IFS= read -r released || :; }} 2>/dev/null <{quote(signal_path)}
  case ",$released," in
    *,{quote(step_name)},*) return 0 ;;
  esac
  [ -z "$loud" ] || {{
{says}  }}
  return 1
}}
"""


class _Poller(NamedTuple):
    """One background check of a wait script."""

    fn: str  # the check function
    label: str  # its progress label
    result: str  # the result text, before " after Ns"
    unmet: tuple[str, ...]  # the labels a timeout names while it has not held


def _in_pod_check(fn: str, target: Target) -> tuple[str, str]:
    """The check function of an in-Pod target and its result text."""
    text = label(target)
    kind = target.kind
    if kind is TargetKind.TCP:
        assert target.tcp is not None
        host, _, port = target.tcp.rpartition(":")
        return _tcp_check(fn, host, int(port)), f"{target.tcp} reachable"
    if kind is TargetKind.HTTP:
        assert target.http is not None
        return _http_check(fn, target), f"{display(target.http)} answered"
    if kind is TargetKind.DNS:
        assert target.dns is not None
        return _dns_check(fn, target.dns), f"{text} resolved"
    if kind is TargetKind.FILE:
        assert target.file is not None
        return _file_check(fn, target.file), f"{text} exists"
    assert target.command is not None
    return _command_check(fn, target.command), f"{text} succeeded"


def _words(texts: Iterable[str]) -> str:
    return " ".join(quote(text) for text in texts)


def wait_script(
    step: Step,
    *,
    termination_log: str = TERMINATION_LOG,
    signal_path: str = SIGNAL_PATH,
) -> str:
    """The script of a waitFor step: all in-Pod targets checked concurrently.

    Each in-Pod target runs in its own background subshell that tries it every POLL_SECONDS
    until it holds; API-side targets (service existence and endpoints, job, resource) are
    one more subshell that waits for the step's name in the operator's release list at
    `signal_path` (a downward API file). A subshell that ends wakes the main loop at once;
    the loop also ticks every second for the timeout, so the `after Ns` times are exact to a
    second.
    """
    checks: list[str] = []
    pollers: list[_Poller] = []
    operator_labels: list[str] = []
    for target in step.targets:
        fn = f"check_{len(pollers)}"
        text = label(target)
        if target.checked_by_operator:
            operator_labels.append(text)
            if target.kind is TargetKind.SERVICE and target.port is not None:
                host = service_host(target)
                checks.append(_tcp_check(fn, host, target.port))
                pollers.append(_Poller(fn, text, f"{host}:{target.port} reachable", (text,)))
            continue
        check, result = _in_pod_check(fn, target)
        checks.append(check)
        pollers.append(_Poller(fn, text, result, (text,)))
    if operator_labels:
        fn = f"check_{len(pollers)}"
        checks.append(_signal_check(fn, step.name, operator_labels, signal_path))
        joined = ", ".join(operator_labels)
        pollers.append(
            _Poller(fn, joined, f"{joined} confirmed by the operator", tuple(operator_labels))
        )

    # A check that holds wakes the main loop with USR1 (a trapped signal ends its `wait`), so
    # the step exits as soon as its last check holds. `${$}`, not `$$`: the kubelet turns `$$`
    # in a container's command into `$`.
    lines = [prelude(termination_log), _POLL, *checks, "woke=''\ntrap 'woke=1' USR1\n"]
    for index, poller in enumerate(pollers):
        lines.append(
            f'{{ poll {poller.fn} {quote(poller.label)} && kill -USR1 "${{$}}"; }} &\n'
            f'p{index}=$!\nkids="$kids $p{index}"\n'
        )
    lines.append("met=0\nwhile :; do\n  elapsed=$(( $(date +%s) - start ))\n")
    for index, poller in enumerate(pollers):
        lines.append(
            f"""\
  if [ -z "${{d{index}:-}}" ] && ! kill -0 "$p{index}" 2>/dev/null; then
    if ! wait "$p{index}"; then
      finish "check of "{quote(poller.label)}" stopped unexpectedly"
      exit 1
    fi
    d{index}=$elapsed
    met=$((met + 1))
    printf 'ok: %s after %ss\\n' {quote(poller.result)} "$elapsed"
  fi
"""
        )
    lines.append(f'  [ "$met" -lt {len(pollers)} ] || break\n')
    if step.timeout_seconds is not None:
        limit = step.timeout_seconds
        unmet = "".join(
            f'    [ -n "${{d{index}:-}}" ] || unmet {_words(poller.unmet)}\n'
            for index, poller in enumerate(pollers)
        )
        pids = " ".join(f'"$p{index}"' for index in range(len(pollers)))
        lines.append(
            f"""\
  if [ "$elapsed" -ge {limit} ]; then
    missing=''
{unmet}    kill {pids} 2>/dev/null
    finish {messages.wait_timeout_sh("$missing", limit)}
    exit {WAIT_TIMEOUT_EXIT_CODE}
  fi
"""
        )
    lines.append(
        "  if [ -n \"$woke\" ]; then woke=''; nap=$recheck; else nap=1; fi\n"
        '  run sleep "$nap" || kill "$kid" 2>/dev/null\ndone\nmsg=\'\'\n'
    )
    for index, poller in enumerate(pollers):
        lines.append(f'msg="${{msg:+$msg; }}"{quote(poller.result + " after ")}"${{d{index}}}s"\n')
    lines.append('finish "$msg"\n')
    return "".join(lines)
