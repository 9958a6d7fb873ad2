"""The scripts of the steps that write into a volume: download, copyAssets (and the tools
container in front of it) and prepareVolume."""

from __future__ import annotations

from typing import Final

from initpipeline import messages
from initpipeline.names import TARGET_DIR, TOOLS_DIR, WAIT_TIMEOUT_EXIT_CODE
from initpipeline.scripts.shell import (
    BUSYBOX,
    FAIL,
    TERMINATION_LOG,
    base,
    display,
    prelude,
    quote,
)
from initpipeline.spec import CopyAssets, Download, PrepareVolume

# A failed download is tried again after 1, 2, 4, 8, then every MAX_DELAY seconds.
MAX_DELAY: Final = 10
# One download attempt gives up after this long (seconds).
DOWNLOAD_ATTEMPT_TIMEOUT: Final = 900


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
        mismatch = messages.checksum_mismatch_sh(quote(display(download.url)), "$got", "$want")
        verify = f"""\
    want={quote(download.sha256)}
    run sha256sum "$tmp" >"$scratch" 2>&1 || :
    got=$(cut -c 1-64 "$scratch")
    if [ "$got" != "$want" ]; then
      tidy
      finish {mismatch}
      exit 1
    fi
"""
    return f"""\
{prelude(termination_log)}url={quote(download.url)}
dest={quote(dest)}
limit={limit}
dir=${{dest%/*}}
tmp="$dir/.${{dest##*/}}.initpipeline-tmp"
tidy() {{ rm -f "$tmp"; }}
mkdir -p "$dir" || {{ finish "cannot create directory "{quote(display(dest))}; exit 1; }}
delay=1
why=''
while :; do
  per={DOWNLOAD_ATTEMPT_TIMEOUT}
  if [ "$limit" -gt 0 ]; then
    per=$(( limit - ($(date +%s) - start) ))
    if [ "$per" -le 0 ]; then
      finish {messages.wait_timeout_sh('"' + quote(text) + '"', limit, "${why:+: $why}")}
      exit {WAIT_TIMEOUT_EXIT_CODE}
    fi
  fi
  if run timeout "$per" wget -q -O "$tmp" "$url" >"$scratch" 2>&1; then
{verify}    size=$(( $(wc -c <"$tmp") ))
    if mv -f "$tmp" "$dest"; then
      finish "downloaded "{quote(display(download.url))}" ($size bytes)"
      exit 0
    fi
    why="cannot write "{quote(display(dest))}
  else
    why=$(last "$(cat "$scratch")")
    [ -n "$why" ] || why="no complete answer within ${{per}}s"
  fi
  tidy
  say {quote(text)} "$why"
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
{base(termination_log)}{FAIL}{_DYNAMIC_ELF}if dynamic {quote(busybox)}; then
  fail {quote(static_hint)}
fi
rm -f {quote(target)}
run cp {quote(busybox)} {quote(target)} >"$scratch" 2>&1 ||
  fail "CopyAssets: cannot copy busybox: $(cat "$scratch")"
chmod 0555 {quote(target)}
{quote(target)} true || fail {quote(f"CopyAssets: {target} does not run")}
printf '%s\\n' {quote(f"{busybox} copied to {target} for copyAssets steps")} 2>/dev/null >"$tlog"
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
    missing = quote(
        f"CopyAssets: {display(copy.from_)} does not exist in image {display(copy.image)}"
    )
    return f"""\
{base(termination_log)}bb={quote(busybox)}
src={quote(copy.from_)}
dest={quote(dest)}
{FAIL}count() {{ "$bb" find "$src" ! -type d | "$bb" wc -l; }}
[ -e "$src" ] || fail {missing}
out=$("$bb" mkdir -p "$dest" 2>&1) || fail "CopyAssets: cannot create "{quote(where)}": $out"
if [ -d "$src" ]; then
  run count >"$scratch" 2>/dev/null
  n=$("$bb" cat "$scratch")
  from="$src/."
else
  n=1
  from=$src
fi
run "$bb" cp -Rf "$from" "$dest/" >"$scratch" 2>&1 ||
  fail "CopyAssets: copying "{quote(source)}" failed: $("$bb" cat "$scratch")"
msg="copied $(( n )) files from "{quote(source)}" to "{quote(where)}
printf '%s\\n' "$msg"
printf '%s\\n' "$msg" 2>/dev/null >"$tlog"
exit 0
"""


def _prepare_action(command: str, value: str) -> str:
    return (
        f'run {command} {quote(value)} "$dest" 2>"$scratch" ||\n'
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
{base(termination_log)}dest={quote(dest)}
fail() {{
  printf '%s\\n' "PrepareVolume: $1" >&2
  printf '%s\\n' "PrepareVolume: $1" 2>/dev/null >"$tlog"
  exit 1
}}
run mkdir -p "$dest" 2>"$scratch" || fail "cannot create "{quote(where)}": $(cat "$scratch")"
{actions}printf '%s\\n' {quote(summary)}
printf '%s\\n' {quote(summary)} 2>/dev/null >"$tlog"
exit 0
"""
