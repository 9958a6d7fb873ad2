"""POSIX sh scripts for the generated steps, written for busybox (`sh`, `nc`, `wget` ...).

Pure string building, no I/O. Every user-supplied string reaches the shell through
`shlex.quote` only, so no spec value can change what a script does.

Busybox quirks the scripts work around (seen on Debian's busybox-static 1.35 and the
official busybox images):

- `nc` has no `-z`, and `nc host port </dev/null` stays connected until the server hangs
  up; `nc -w 3 host port -e true` connects, runs `true` and exits 0, or exits 1 with
  "can't connect to remote host (...): Connection refused" / "bad address 'x'".
- `wget -T` crashes on Debian's busybox, so wget, nslookup and command targets run under the
  `timeout` applet instead. Its watchdog keeps the output pipe open for up to a second after
  the command ends, so such an attempt takes at least about a second; `nc` bounds itself
  (`-w` for the connect, the resolver's own timeouts for the name) and runs without it.
- `wget` exits 1 on any HTTP status >= 400 without printing the body; `-S` prints the
  response headers (`  HTTP/1.1 200 OK`) on stderr, the only way to see the status.
- `nslookup` asks the DNS server only (no /etc/hosts) and exits 1 on NXDOMAIN, so the dns
  check reads /etc/hosts first, like the C library does. It also tries every search domain
  of /etc/resolv.conf and exits 1 when any of them fails, even after printing an answer
  (`myservice` in a Pod: `Name: myservice.<ns>.svc.cluster.local`, then NXDOMAIN for
  `myservice.svc.cluster.local` ...), so a `Name:` line in its output counts as resolved.

Output protocol (read by users in `kubectl logs`; the formats the operator reads back,
`waiting:` lines and the WaitTimeout and ChecksumMismatch messages, are owned by
`initpipeline.messages`, which holds their writers and readers):

- While a target does not hold: one line per attempt on stdout,
  `waiting: <label>: <why>` (label = `Target.describe()`, e.g.
  `waiting: tcp mysql:3306: Connection refused`). Targets checked by the operator print
  `waiting: <label>: checked by the operator` until the operator releases the step.
  A download that fails prints `waiting: download <url>: <why>` before each retry.
- When a target holds: `ok: <result> after <N>s`, where <result> is `<host>:<port>
  reachable` (tcp, service port), `<url> answered` (http), `dns <name> resolved`,
  `file <path> exists`, `command <argv> succeeded`, or `<labels> confirmed by the
  operator` (all API-side targets of the step at once).
- Termination message (also the last stdout line), one line in /dev/termination-log:
  wait success: the results joined by "; " in spec order, e.g.
  `mysql:3306 reachable after 12s; dns myservice resolved after 0s`;
  wait/download timeout: `WaitTimeout: <labels, comma separated> not met after <N>s`
  (a download adds `: <last error>`);
  download: `downloaded <url> (<bytes> bytes)`; with `sha256` and another digest:
  `ChecksumMismatch: sha256 of <url> is <actual>, expected <expected>` (exit 1);
  copyAssets: `copied <n> files from <image>:<from> to volume <volume>[/<path>]`;
  prepareVolume: `prepared volume <v>[/<path>]: mode <m>, owner <o>`; failures start
  with `CopyAssets: ` (also from TOOLS_CONTAINER) or `PrepareVolume: `.
- User strings in labels and messages have control characters replaced by '?', so every
  progress line and message stays one line.
- Exit codes: 0 done; WAIT_TIMEOUT_EXIT_CODE (124) timeoutSeconds ran out; 1 the step
  failed (message says why); 143 stopped by SIGTERM (Pod deleted).
- SIGTERM is acted on at once in every script: long commands (checks, wget, sha256sum,
  cp, find, chown, chmod, sleeps) run in the background under `run`, whose `wait` a trap
  interrupts (see `_BASE`).

Attempts back off 1, 2, 4, 8, then every 10 seconds (integer `sleep`s only).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from initpipeline import messages
from initpipeline.names import (
    SIGNAL_DIR,
    SIGNAL_FILE,
    TARGET_DIR,
    TOOLS_DIR,
    WAIT_TIMEOUT_EXIT_CODE,
)
from initpipeline.spec import (
    CopyAssets,
    Download,
    ObjectRef,
    PrepareVolume,
    Step,
    Target,
    TargetKind,
)

TERMINATION_LOG: Final = "/dev/termination-log"
SIGNAL_PATH: Final = f"{SIGNAL_DIR}/{SIGNAL_FILE}"
BUSYBOX: Final = f"{TOOLS_DIR}/busybox"

# Per-attempt limits (seconds): one check never blocks longer than this.
TCP_TIMEOUT: Final = 3
HTTP_TIMEOUT: Final = 10
DNS_TIMEOUT: Final = 10
COMMAND_TIMEOUT: Final = 60
DOWNLOAD_ATTEMPT_TIMEOUT: Final = 900
MAX_DELAY: Final = 10

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _q(text: str | int) -> str:
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
poll() {{
  delay=1
  while ! "$1"; do
    [ -z "$why" ] || say "$2" "$why"
    sleep "$delay"
    delay=$((delay * 2))
    [ "$delay" -le {MAX_DELAY} ] || delay={MAX_DELAY}
  done
}}
"""


def _base(termination_log: str) -> str:
    return _BASE.replace("{tlog}", _q(termination_log))


def _prelude(termination_log: str) -> str:
    return _base(termination_log) + _PRELUDE


_FAIL: Final = (
    """fail() { printf '%s\\n' "$1" >&2; printf '%s\\n' "$1" 2>/dev/null >"$tlog"; exit 1; }\n"""
)


def _tcp_check(fn: str, host: str, port: int) -> str:
    return f"""\
{fn}() {{
  why=''
  out=$(nc -w {TCP_TIMEOUT} {_q(host)} {_q(port)} -e true 2>&1 </dev/null) && return 0
  why=$(last "$out")
  [ -n "$why" ] || why='no connection within {TCP_TIMEOUT}s'
  return 1
}}
"""


def _http_check(fn: str, target: Target) -> str:
    assert target.http is not None
    url = _q(target.http)
    if target.body_contains is None:
        fetch = f"out=$(timeout {HTTP_TIMEOUT} wget -S -q -O /dev/null {url} 2>&1 </dev/null)"
        body_test = ""
    else:
        needle = target.body_contains
        fetch = (
            f"out=$({{ timeout {HTTP_TIMEOUT} wget -S -q -O - {url} 2>&3 </dev/null"
            f" | {{ if grep -qF -e {_q(needle)}; then echo body:match;"
            " else echo body:nomatch; fi; cat >/dev/null; }; } 3>&1)"
        )
        missing = _q(f"body does not contain {display(needle)!r}")
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
  why=''
  {fetch}
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
  why=''
  name={_q(name)} awk {_q(_HOSTS_AWK)} /etc/hosts 2>/dev/null && return 0
  out=$(timeout {DNS_TIMEOUT} nslookup {_q(name)} 2>&1 </dev/null) && return 0
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
  [ -e {_q(path)} ]
}}
"""


def _command_check(fn: str, argv: Sequence[str]) -> str:
    words = " ".join(_q(word) for word in argv)
    return f"""\
{fn}() {{
  why=''
  out=$(timeout -k 5 {COMMAND_TIMEOUT} {words} 2>&1 </dev/null)
  rc=$?
  [ "$rc" -eq 0 ] && return 0
  why="exit $rc"
  [ "$rc" -ne 143 ] || why='no exit within {COMMAND_TIMEOUT}s'
  detail=$(last "$out")
  [ -z "$detail" ] || why="$why: $detail"
  return 1
}}
"""


def _signal_check(fn: str, step_name: str, labels: Iterable[str], signal_path: str) -> str:
    says = "".join(messages.say_placeholder_sh(_q(text)) for text in labels)
    return f"""\
{fn}() {{
  why=''
  released=$(cat {_q(signal_path)} 2>/dev/null) || released=''
  case ",$released," in
    *,{_q(step_name)},*) return 0 ;;
  esac
{says}  return 1
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


def wait_script(
    step: Step,
    *,
    termination_log: str = TERMINATION_LOG,
    signal_path: str = SIGNAL_PATH,
) -> str:
    """The script of a waitFor step: all in-Pod targets checked concurrently.

    Each in-Pod target runs in its own background subshell that retries with backoff until
    the target holds; API-side targets (service existence and endpoints, job, resource) are
    one more subshell that waits for the step's name in the operator's release list at
    `signal_path` (a downward API file). The main loop notices each finished subshell within
    a second, so the `after Ns` times are exact to a second.
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

    lines = [_prelude(termination_log), *checks]
    for index, poller in enumerate(pollers):
        lines.append(
            f'poll {poller.fn} {_q(poller.label)} &\np{index}=$!\nkids="$kids $p{index}"\n'
        )
    lines.append("met=0\nwhile :; do\n  elapsed=$(( $(date +%s) - start ))\n")
    for index, poller in enumerate(pollers):
        lines.append(
            f"""\
  if [ -z "${{d{index}:-}}" ] && ! kill -0 "$p{index}" 2>/dev/null; then
    if ! wait "$p{index}"; then
      finish "check of "{_q(poller.label)}" stopped unexpectedly"
      exit 1
    fi
    d{index}=$elapsed
    met=$((met + 1))
    printf 'ok: %s after %ss\\n' {_q(poller.result)} "$elapsed"
  fi
"""
        )
    lines.append(f'  [ "$met" -lt {len(pollers)} ] || break\n')
    if step.timeout_seconds is not None:
        limit = step.timeout_seconds
        unmet = "".join(
            f'    [ -n "${{d{index}:-}}" ] || unmet {" ".join(_q(text) for text in poller.unmet)}\n'
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
    lines.append("  run sleep 1\ndone\nmsg=''\n")
    for index, poller in enumerate(pollers):
        lines.append(f'msg="${{msg:+$msg; }}"{_q(poller.result + " after ")}"${{d{index}}}s"\n')
    lines.append('finish "$msg"\n')
    return "".join(lines)


def download_script(
    download: Download,
    *,
    timeout_seconds: int | None = None,
    target_dir: str = TARGET_DIR,
    termination_log: str = TERMINATION_LOG,
) -> str:
    """The script of a download step: GET `url` into `target_dir/path`, retrying with backoff.

    The file is written under a temporary name next to the destination and renamed, so a
    reader never sees half a file. Without `timeout_seconds` it retries until it succeeds.
    With `sha256`, a download whose digest differs fails the step (exit 1, ChecksumMismatch)
    and is not kept: retrying would fetch the same wrong file.
    """
    dest = f"{target_dir.rstrip('/')}/{download.path}"
    text = display(f"download {download.url}")
    limit = timeout_seconds or 0
    verify = ""
    if download.sha256 is not None:
        mismatch = messages.checksum_mismatch_sh(_q(display(download.url)), "$got", "$want")
        verify = f"""\
    want={_q(download.sha256)}
    run sha256sum "$tmp" >"$scratch" 2>&1 || :
    got=$(cut -c 1-64 "$scratch")
    if [ "$got" != "$want" ]; then
      tidy
      finish {mismatch}
      exit 1
    fi
"""
    return f"""\
{_prelude(termination_log)}url={_q(download.url)}
dest={_q(dest)}
limit={limit}
dir=${{dest%/*}}
tmp="$dir/.${{dest##*/}}.initpipeline-tmp"
tidy() {{ rm -f "$tmp"; }}
mkdir -p "$dir" || {{ finish "cannot create directory "{_q(display(dest))}; exit 1; }}
delay=1
why=''
while :; do
  per={DOWNLOAD_ATTEMPT_TIMEOUT}
  if [ "$limit" -gt 0 ]; then
    per=$(( limit - ($(date +%s) - start) ))
    if [ "$per" -le 0 ]; then
      finish {messages.wait_timeout_sh('"' + _q(text) + '"', limit, "${why:+: $why}")}
      exit {WAIT_TIMEOUT_EXIT_CODE}
    fi
  fi
  if run timeout "$per" wget -q -O "$tmp" "$url" >"$scratch" 2>&1; then
{verify}    size=$(( $(wc -c <"$tmp") ))
    if mv -f "$tmp" "$dest"; then
      finish "downloaded "{_q(display(download.url))}" ($size bytes)"
      exit 0
    fi
    why="cannot write "{_q(display(dest))}
  else
    why=$(last "$(cat "$scratch")")
    [ -n "$why" ] || why="no complete answer within ${{per}}s"
  fi
  tidy
  say {_q(text)} "$why"
  if [ "$limit" -gt 0 ]; then
    left=$(( limit - ($(date +%s) - start) ))
    [ "$delay" -le "$left" ] || delay=$left
    [ "$delay" -ge 1 ] || delay=1
  fi
  run sleep "$delay"
  delay=$((delay * 2))
  [ "$delay" -le {MAX_DELAY} ] || delay={MAX_DELAY}
done
"""


# True when the ELF file $1 asks for a program interpreter (PT_INTERP): dynamically linked.
# Read with od in the file's own byte order, which is the machine's: it is about to run here.
_DYNAMIC_ELF: Final = """\
dynamic() {
  cls=$(od -An -t u1 -j 4 -N 1 "$1" | tr -d ' ')
  if [ "$cls" = 2 ]; then
    phoff=$(od -An -t u8 -j 32 -N 8 "$1")
    size=$(od -An -t u2 -j 54 -N 2 "$1")
    count=$(od -An -t u2 -j 56 -N 2 "$1")
  else
    phoff=$(od -An -t u4 -j 28 -N 4 "$1")
    size=$(od -An -t u2 -j 42 -N 2 "$1")
    count=$(od -An -t u2 -j 44 -N 2 "$1")
  fi
  i=0
  while [ "$i" -lt $((count)) ]; do
    type=$(od -An -t u4 -j $((phoff + i * size)) -N 4 "$1")
    [ $((type)) -ne 3 ] || return 0
    i=$((i + 1))
  done
  return 1
}
"""


def tools_script(
    busybox: str = "/bin/busybox",
    tools_dir: str = TOOLS_DIR,
    *,
    termination_log: str = TERMINATION_LOG,
) -> str:
    """The script of TOOLS_CONTAINER: copy the step image's busybox into `tools_dir`.

    copyAssets steps then run it inside images that have no shell and no `cp`, so it must
    be statically linked: a dynamic one (e.g. the glibc variant of the official busybox
    image) fails here with a message naming the fix, not later with "no such file".
    """
    target = f"{tools_dir.rstrip('/')}/busybox"
    static_hint = (
        f"CopyAssets: {busybox} in the step image is dynamically linked; copyAssets needs a "
        "static busybox (set INITPIPELINE_STEP_IMAGE to e.g. busybox:1.36.1-musl)"
    )
    return f"""\
{_base(termination_log)}{_FAIL}{_DYNAMIC_ELF}if dynamic {_q(busybox)}; then
  fail {_q(static_hint)}
fi
rm -f {_q(target)}
run cp {_q(busybox)} {_q(target)} >"$scratch" 2>&1 ||
  fail "CopyAssets: cannot copy busybox: $(cat "$scratch")"
chmod 0555 {_q(target)}
{_q(target)} true || fail {_q(f"CopyAssets: {target} does not run")}
printf '%s\\n' {_q(f"{busybox} copied to {target} for copyAssets steps")} 2>/dev/null >"$tlog"
exit 0
"""


def copy_assets_script(
    copy: CopyAssets,
    *,
    busybox: str = BUSYBOX,
    target_dir: str = TARGET_DIR,
    termination_log: str = TERMINATION_LOG,
) -> str:
    """The script of a copyAssets step, run by `busybox sh` inside the assets image.

    Every tool is called as `busybox <applet>`, so the image needs neither a shell nor
    `cp`. Copies the content of `from` (a directory, or a single file) into the volume.
    The copy (and the count of a directory's files) runs in the background.
    """
    dest = f"{target_dir.rstrip('/')}/{copy.path}".rstrip("/")
    where = display(f"volume {copy.volume}" + (f"/{copy.path}" if copy.path else ""))
    source = display(f"{copy.image}:{copy.from_}")
    missing = _q(f"CopyAssets: {display(copy.from_)} does not exist in image {display(copy.image)}")
    return f"""\
{_base(termination_log)}bb={_q(busybox)}
src={_q(copy.from_)}
dest={_q(dest)}
{_FAIL}count() {{ "$bb" find "$src" ! -type d | "$bb" wc -l; }}
[ -e "$src" ] || fail {missing}
out=$("$bb" mkdir -p "$dest" 2>&1) || fail "CopyAssets: cannot create "{_q(where)}": $out"
if [ -d "$src" ]; then
  run count >"$scratch" 2>/dev/null
  n=$("$bb" cat "$scratch")
  from="$src/."
else
  n=1
  from=$src
fi
run "$bb" cp -Rf "$from" "$dest/" >"$scratch" 2>&1 ||
  fail "CopyAssets: copying "{_q(source)}" failed: $("$bb" cat "$scratch")"
msg="copied $(( n )) files from "{_q(source)}" to "{_q(where)}
printf '%s\\n' "$msg"
printf '%s\\n' "$msg" 2>/dev/null >"$tlog"
exit 0
"""


def _prepare_action(command: str, value: str) -> str:
    return (
        f'run {command} {_q(value)} "$dest" 2>"$scratch" ||\n'
        f'  fail "{command} failed: $(cat "$scratch")"\n'
    )


def prepare_volume_script(
    prepare: PrepareVolume,
    *,
    target_dir: str = TARGET_DIR,
    termination_log: str = TERMINATION_LOG,
) -> str:
    """The script of a prepareVolume step: mkdir -p, then chown, then chmod (not recursive).

    chown comes first because it clears set-id bits that `mode` may ask for. Each command
    runs in the background (a volume on a slow network filesystem must not hold off
    SIGTERM).
    """
    dest = f"{target_dir.rstrip('/')}/{prepare.path}".rstrip("/")
    where = display(f"volume {prepare.volume}" + (f"/{prepare.path}" if prepare.path else ""))
    done = [f"mode {prepare.mode}"] if prepare.mode else []
    done += [f"owner {prepare.owner}"] if prepare.owner else []
    summary = f"prepared {where}" + (f": {', '.join(done)}" if done else "")
    actions = ""
    if prepare.owner:
        actions += _prepare_action("chown", prepare.owner)
    if prepare.mode:
        actions += _prepare_action("chmod", prepare.mode)
    return f"""\
{_base(termination_log)}dest={_q(dest)}
fail() {{
  printf '%s\\n' "PrepareVolume: $1" >&2
  printf '%s\\n' "PrepareVolume: $1" 2>/dev/null >"$tlog"
  exit 1
}}
run mkdir -p "$dest" 2>"$scratch" || fail "cannot create "{_q(where)}": $(cat "$scratch")"
{actions}printf '%s\\n' {_q(summary)}
printf '%s\\n' {_q(summary)} 2>/dev/null >"$tlog"
exit 0
"""
