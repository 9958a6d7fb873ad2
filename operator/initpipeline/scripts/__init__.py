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

- While a target does not hold: a line on stdout when the reason changes (and every 20th
  attempt),
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
  interrupts (see `shell._BASE`).

Wait checks are tried every 0.5 s for as long as the step waits (every second where
`sleep` takes no fractions), and a check that holds wakes the script at once (USR1), so a
dependency is noticed within about a second; downloads retry after 1, 2, 4, 8, then every
10 seconds.
"""

from initpipeline.scripts.files import (
    copy_assets_script,
    download_script,
    prepare_volume_script,
    tools_script,
)
from initpipeline.scripts.shell import (
    BUSYBOX,
    SIGNAL_PATH,
    TERMINATION_LOG,
    display,
    label,
    service_host,
)
from initpipeline.scripts.wait import wait_script

__all__ = [
    "BUSYBOX",
    "SIGNAL_PATH",
    "TERMINATION_LOG",
    "copy_assets_script",
    "display",
    "download_script",
    "label",
    "prepare_volume_script",
    "service_host",
    "tools_script",
    "wait_script",
]
