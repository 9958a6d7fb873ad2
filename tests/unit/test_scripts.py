"""The generated scripts, really run by busybox `sh` with only busybox applets on PATH.

Servers are local (127.0.0.1, ephemeral ports) and come up while a script waits; the
termination log is a temporary file. Assertions are on what a user sees: exit codes,
progress lines, termination messages, files.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import math
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import in_ci

from initpipeline import messages, scripts
from initpipeline.names import PIPELINE_LABEL, WAIT_TIMEOUT_EXIT_CODE
from initpipeline.spec import CopyAssets, Download, PrepareVolume, Step, parse_pipeline
from initpipeline.status import derive_status, step_events

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

pytestmark = pytest.mark.unit

if not os.access(BUSYBOX, os.X_OK):
    if in_ci():
        pytest.fail("busybox is missing: .ci/run installs busybox-static", pytrace=False)
    pytest.skip("needs busybox (apt-get install busybox-static)", allow_module_level=True)


@dataclass
class Run:
    code: int
    output: str
    message: str
    seconds: float

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="session")
def applets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH directory holding nothing but busybox applets."""
    bin_dir = tmp_path_factory.mktemp("busybox-bin")
    names = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for name in names.stdout.split():
        (bin_dir / name).symlink_to(BUSYBOX)
    return bin_dir


Runner = Callable[..., Run]


def took(pattern: str, text: str, result: Run) -> int:
    """The seconds `text` (all of it matching `pattern`, one group) says a check took: a
    difference of whole-second clock readings, so never more than the run's wall time
    rounded up, however busy the machine (a fixed bound such as [01] flakes on two cores)."""
    found = re.fullmatch(pattern, text)
    assert found, f"{text!r} does not match {pattern!r}"
    seconds = int(found.group(1))
    assert seconds <= math.ceil(result.seconds), (text, result.seconds)
    return seconds


@pytest.fixture
def run(tmp_path: Path, applets: Path) -> Iterator[Runner]:
    started: list[subprocess.Popen[bytes]] = []

    def run_script(
        script: str,
        *,
        limit: float = 15,
        path: Path | None = None,
        argv0: list[str] | None = None,
        tlog: Path | None = None,
        user: int | None = None,
        reached: Callable[[], None] | None = None,
        on: Sequence[tuple[str, Callable[[], Any]]] = (),
    ) -> Run:
        """Run `script` to its end (at most `limit` seconds).

        on: (text, action) in turn: once the script has printed `text`, do `action` (the
          world changes while the script waits, after it observably saw it unchanged).
        reached: once it returns (the script is in its long command), send SIGTERM to the
          shell alone, as the kubelet does to a container's PID 1.
        """
        log = tmp_path / "output.log"
        tlog = tlog or tmp_path / "termination-log"
        begin = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*(argv0 or [BUSYBOX, "sh", "-c"]), script],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"PATH": str(path or applets), "HOME": "/"},
                cwd="/" if user is not None else tmp_path,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user is not None else None,
            )
            started.append(proc)
            for text, action in on:
                printed(log, text, proc)
                action()
            if reached is not None:
                reached()
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=limit)
        seconds = time.monotonic() - begin
        message = tlog.read_text() if tlog.exists() else ""
        return Run(code, log.read_text(), message.strip(), seconds)

    yield run_script
    for proc in started:  # leftovers of killed checks (a sleep, an nc) go with the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def tlog(tmp_path: Path) -> str:
    return str(tmp_path / "termination-log")


def printed(log: Path, text: str, proc: subprocess.Popen[bytes], within: float = 20) -> None:
    """Returns once the running script's output holds `text`."""
    deadline = time.monotonic() + within
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"the script ended before printing {text!r}"
        assert time.monotonic() < deadline, f"{text!r} not printed within {within}s"
        time.sleep(0.02)


def release_file(path: Path) -> None:
    """Write the operator's release list as the kubelet updates a downward API file."""
    path.write_text("other,wait-db")


def wait_step(
    targets: list[dict[str, Any]], timeout: int | None = None, name: str = "deps"
) -> Step:
    body: dict[str, Any] = {"name": name, "waitFor": targets}
    if timeout is not None:
        body["timeoutSeconds"] = timeout
    return Step.model_validate(body)


class PortLater:
    """A TCP port that refuses connections until `open()`, then accepts and holds them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = threading.Event()  # set once a client is connected

    def open(self) -> None:
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)  # never answers, never hangs up
            self.accepted.set()

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def port_later() -> Iterator[PortLater]:
    port = PortLater()
    yield port
    port.close()


class Web:
    """An HTTP server whose answer (status, body) the test changes while a script waits."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"ok"
        web = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(web.status)
                self.send_header("Content-Length", str(len(web.body)))
                self.end_headers()
                self.wfile.write(web.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, status: int, body: bytes | None = None) -> None:
        self.status = status
        if body is not None:
            self.body = body


@pytest.fixture
def web() -> Iterator[Web]:
    server = Web()
    yield server
    server.server.shutdown()
    server.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- waitFor ---------------------------------------------------------------------------


def test_tcp_waits_until_the_port_accepts(run: Runner, tlog: str, port_later: PortLater) -> None:
    target = f"127.0.0.1:{port_later.port}"
    script = scripts.wait_script(wait_step([{"tcp": target}]), termination_log=tlog)
    result = run(script, on=[(f"waiting: tcp {target}: Connection refused", port_later.open)])
    assert result.code == 0, result.output
    assert result.lines("waiting:") == [f"waiting: tcp {target}: Connection refused"]
    assert took(rf"{re.escape(target)} reachable after (\d+)s", result.message, result) >= 0
    assert result.output.splitlines()[-1] == result.message


def test_service_port_is_checked_in_the_pod_and_the_rest_by_the_operator(
    run: Runner, tmp_path: Path, tlog: str, port_later: PortLater
) -> None:
    signal_file = tmp_path / "released"
    step = wait_step([{"service": "localhost", "port": port_later.port}], name="wait-db")
    script = scripts.wait_script(step, termination_log=tlog, signal_path=str(signal_file))
    port_later.open()
    label = f"service localhost port {port_later.port}"
    release = (f"waiting: {label}: checked by the operator", lambda: release_file(signal_file))
    result = run(script, on=[release])
    assert result.code == 0, result.output
    assert result.lines("waiting:") == [f"waiting: {label}: checked by the operator"]
    # the seconds vary with the machine's pace
    assert re.fullmatch(
        rf"localhost:{port_later.port} reachable after \d+s; "
        rf"{label} confirmed by the operator after \d+s",
        result.message,
    )


def test_release_list_must_name_the_step_exactly(run: Runner, tmp_path: Path, tlog: str) -> None:
    signal_file = tmp_path / "released"
    signal_file.write_text("wait-db-2,wait,db")
    step = wait_step([{"job": "db-migrate"}], timeout=2, name="wait-db")
    result = run(scripts.wait_script(step, termination_log=tlog, signal_path=str(signal_file)))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.message == "WaitTimeout: job db-migrate not met after 2s"


def test_http_default_wants_2xx_and_reports_the_status(run: Runner, tlog: str, web: Web) -> None:
    web.set(503)
    script = scripts.wait_script(wait_step([{"http": web.url + "/health"}]), termination_log=tlog)
    result = run(script, on=[("HTTP 503, want 2xx", lambda: web.set(204))])
    assert result.code == 0, result.output
    assert result.lines("waiting:") == [f"waiting: http {web.url}/health: HTTP 503, want 2xx"]
    assert took(rf"{re.escape(web.url)}/health answered after (\d+)s", result.message, result) >= 0


def test_http_expect_status_and_body(run: Runner, tlog: str, web: Web) -> None:
    web.set(200, b"status: STARTING")
    target = {"http": web.url + "/", "expectStatus": 200, "bodyContains": '"UP"'}
    result = run(
        scripts.wait_script(wait_step([target]), termination_log=tlog),
        on=[("body does not contain", lambda: web.set(200, b'{"status": "UP"}'))],
    )
    assert result.code == 0, result.output
    assert result.lines("waiting:") == [
        f"waiting: http {web.url}/: HTTP 200, body does not contain '\"UP\"'"
    ]
    assert took(rf"{re.escape(web.url)}/ answered after (\d+)s", result.message, result) >= 0


def test_http_expect_status_other_than_2xx(run: Runner, tlog: str, web: Web) -> None:
    web.set(200)
    target = {"http": web.url + "/", "expectStatus": 418}
    result = run(
        scripts.wait_script(wait_step([target]), termination_log=tlog),
        on=[("HTTP 200, want 418", lambda: web.set(418))],
    )
    assert result.code == 0, result.output
    assert result.lines("waiting:") == [f"waiting: http {web.url}/: HTTP 200, want 418"]


def test_http_unreachable_says_why(run: Runner, tlog: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    result = run(scripts.wait_script(wait_step([{"http": url}], timeout=1), termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.lines("waiting:") == [f"waiting: http {url}: Connection refused"]
    assert result.message == f"WaitTimeout: http {url} not met after 1s"


def test_dns_localhost_resolves(run: Runner, tlog: str) -> None:
    result = run(scripts.wait_script(wait_step([{"dns": "localhost"}]), termination_log=tlog))
    assert result.code == 0, result.output
    assert took(r"dns localhost resolved after (\d+)s", result.message, result) >= 0
    assert not result.lines("waiting:")


def test_dns_unknown_name_times_out(run: Runner, tlog: str) -> None:
    step = wait_step([{"dns": "no-such-host.invalid"}], timeout=2)
    result = run(scripts.wait_script(step, termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE, result.output
    assert result.message == "WaitTimeout: dns no-such-host.invalid not met after 2s"
    # the why is the resolver's answer (NXDOMAIN, or a timeout without a network)
    lines = result.lines("waiting:")
    assert lines and all(
        re.fullmatch(r"waiting: dns no-such-host\.invalid: \S.*", line) for line in lines
    ), lines


# What busybox 1.35 nslookup prints for `myservice` in a Pod (ndots:5, three search domains):
# the answer from the first search domain, NXDOMAIN from the others, and exit code 1.
NSLOOKUP_IN_A_POD = """\
Server:\t\t10.88.0.1
Address:\t10.88.0.1:53

Name:\tmyservice.shop.svc.cluster.local
Address: 10.96.49.193

** server can't find myservice.cluster.local: NXDOMAIN

** server can't find myservice.svc.cluster.local: NXDOMAIN
"""
NSLOOKUP_NXDOMAIN = """\
Server:\t\t10.88.0.1
Address:\t10.88.0.1:53

** server can't find myservice.shop.svc.cluster.local: NXDOMAIN

** server can't find myservice.svc.cluster.local: NXDOMAIN
"""


def fake_nslookup(tmp_path: Path, output: str) -> str:
    """Shell functions, to put in front of a script, that make `timeout N nslookup NAME`
    print `output` and exit 1 (busybox runs its own applets, whatever PATH says)."""
    (tmp_path / "nslookup.out").write_text(output)
    return (
        'timeout() { shift; "$@"; }\n'
        f"nslookup() {{ cat {tmp_path / 'nslookup.out'}; return 1; }}\n"
    )


def test_dns_answer_from_a_search_domain_resolves_despite_exit_1(
    run: Runner, tmp_path: Path, tlog: str
) -> None:
    step = wait_step([{"dns": "myservice"}], timeout=5)
    script = fake_nslookup(tmp_path, NSLOOKUP_IN_A_POD) + scripts.wait_script(
        step, termination_log=tlog
    )
    result = run(script)
    assert result.code == 0, result.output
    assert took(r"dns myservice resolved after (\d+)s", result.message, result) >= 0


def test_dns_nxdomain_from_every_search_domain_keeps_waiting(
    run: Runner, tmp_path: Path, tlog: str
) -> None:
    step = wait_step([{"dns": "myservice"}], timeout=2)
    script = fake_nslookup(tmp_path, NSLOOKUP_NXDOMAIN) + scripts.wait_script(
        step, termination_log=tlog
    )
    result = run(script)
    assert result.code == WAIT_TIMEOUT_EXIT_CODE, result.output
    assert result.lines("waiting:") == ["waiting: dns myservice: NXDOMAIN"]
    assert result.message == "WaitTimeout: dns myservice not met after 2s"


def test_file_created_later(run: Runner, tmp_path: Path, tlog: str) -> None:
    path = tmp_path / "certs" / "tls.crt"

    def create() -> None:
        path.parent.mkdir()
        path.write_text("cert")

    result = run(
        scripts.wait_script(wait_step([{"file": str(path)}]), termination_log=tlog),
        on=[(f"waiting: file {path}: does not exist", create)],
    )
    assert result.code == 0, result.output
    assert result.lines("waiting:") == [f"waiting: file {path}: does not exist"]
    assert took(rf"file {re.escape(str(path))} exists after (\d+)s", result.message, result) >= 0


def test_targets_are_checked_concurrently(run: Runner, tmp_path: Path, tlog: str) -> None:
    """The first target holds last; the second is reported ok first, without waiting."""
    path = tmp_path / "ready"
    step = wait_step([{"command": ["sleep", "3"]}, {"file": str(path)}])
    result = run(
        scripts.wait_script(step, termination_log=tlog),
        on=[(f"waiting: file {path}: does not exist", path.touch)],
    )
    assert result.code == 0, result.output
    ok = result.lines("ok:")
    assert len(ok) == 2
    file_took = took(rf"ok: file {re.escape(str(path))} exists after (\d+)s", ok[0], result)
    command_took = took(r"ok: command sleep 3 succeeded after (\d+)s", ok[1], result)
    assert command_took >= 3
    assert result.seconds < 6
    # the termination message keeps spec order
    assert result.message == (
        f"command sleep 3 succeeded after {command_took}s; file {path} exists after {file_took}s"
    )


def test_timeout_names_only_the_unmet_targets(run: Runner, tmp_path: Path, tlog: str) -> None:
    missing = tmp_path / "never"
    step = wait_step([{"dns": "localhost"}, {"file": str(missing)}], timeout=2)
    result = run(scripts.wait_script(step, termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.message == f"WaitTimeout: file {missing} not met after 2s"
    assert result.output.splitlines()[-1] == result.message
    assert result.seconds < 5


HOSTILE = [
    "'; touch pwned-1; '",
    '"; touch pwned-2; "',
    "$(touch pwned-3)",
    "`touch pwned-4`",
    "a\nb; touch pwned-5",
    "\\' %s %n -e --",
]


def test_hostile_command_arguments_stay_arguments(run: Runner, tmp_path: Path, tlog: str) -> None:
    """Each word reaches the user's command unchanged; nothing else runs."""
    expected = tmp_path / "expected"
    expected.write_text("".join(word + "\n" for word in HOSTILE))
    check = 'for word in "$@"; do printf "%s\\n" "$word"; done | cmp -s - "$0"'
    step = wait_step([{"command": ["sh", "-c", check, str(expected), *HOSTILE]}], timeout=5)
    result = run(scripts.wait_script(step, termination_log=tlog))
    assert result.code == 0, result.output
    assert not list(tmp_path.glob("pwned-*"))
    assert took(r".* succeeded after (\d+)s", result.message, result) >= 0
    assert "\n" not in result.message


def test_hostile_strings_in_every_target(run: Runner, tmp_path: Path, tlog: str) -> None:
    weird = tmp_path / 'it\'s "$(touch pwned-6)" `x` \\ %s'
    targets: list[dict[str, Any]] = [
        {"file": str(weird)},
        {"command": ["false", *HOSTILE]},
        {"dns": "$(touch pwned-7)'\""},
        {"http": "http://127.0.0.1:1/$(touch pwned-8)';\"", "bodyContains": "`touch pwned-9`'"},
    ]
    result = run(
        scripts.wait_script(wait_step(targets, timeout=2), termination_log=tlog),
        on=[(f"waiting: file {weird}: does not exist", weird.touch)],
    )
    assert result.code == WAIT_TIMEOUT_EXIT_CODE, result.output
    assert not list(tmp_path.glob("pwned-*"))
    # the file target held; a newline in a label is shown as "?"
    command = "command false " + " ".join(HOSTILE).replace("\n", "?")
    assert result.message == (
        f"WaitTimeout: {command}, dns $(touch pwned-7)'\", "
        "http http://127.0.0.1:1/$(touch pwned-8)';\" not met after 2s"
    )
    assert result.lines("waiting: command false ") == [f"waiting: {command}: exit 1"]


def test_command_reports_exit_code_and_output(run: Runner, tlog: str) -> None:
    step = wait_step([{"command": ["sh", "-c", "echo not yet >&2; exit 3"]}], timeout=1)
    result = run(scripts.wait_script(step, termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.lines("waiting:") == [
        "waiting: command sh -c echo not yet >&2; exit 3: exit 3: not yet"
    ]
    assert result.message == "WaitTimeout: command sh -c echo not yet >&2; exit 3 not met after 1s"


def test_a_failing_check_is_tried_twice_a_second_however_long_it_waits(
    run: Runner, tmp_path: Path, tlog: str
) -> None:
    """No backoff: a dependency that comes up after a long wait is noticed as soon as one that
    comes up at once (the check counts its own attempts)."""
    tries = tmp_path / "tries"
    step = wait_step([{"command": ["sh", "-c", f"echo x >>{tries}; exit 1"]}], timeout=4)
    result = run(scripts.wait_script(step, termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    # every 0.5 s for 4 s makes 8 or 9 (backing off 1, 2, 4 s made 3)
    assert len(tries.read_text().split()) >= 6


def test_a_reason_is_printed_when_it_changes_not_at_every_attempt(
    run: Runner, tmp_path: Path, tlog: str
) -> None:
    same = wait_step([{"file": str(tmp_path / "never")}], timeout=3)
    result = run(scripts.wait_script(same, termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.lines("waiting:") == [f"waiting: file {tmp_path / 'never'}: does not exist"]

    tries = tmp_path / "tries"
    counting = f'echo x >>{tries}; echo "attempt $(wc -l <{tries})" >&2; exit 1'
    changing = wait_step([{"command": ["sh", "-c", counting]}], timeout=3)
    result = run(scripts.wait_script(changing, termination_log=tlog))
    said = [line.rpartition(": ")[2] for line in result.lines("waiting:")]
    assert said == [f"attempt {n}" for n in range(1, len(said) + 1)]
    # each attempt's line, but perhaps the last one's: the timeout can stop it mid-way
    assert len(said) >= len(tries.read_text().split()) - 1 >= 4


# --- download ---------------------------------------------------------------------------


def test_download_retries_then_writes_atomically(
    run: Runner, tmp_path: Path, tlog: str, web: Web
) -> None:
    web.set(404, b"no")
    content = b"worker_processes 1;\n" * 100
    target = tmp_path / "volume"
    target.mkdir()
    download = Download(url=web.url + "/nginx.conf", volume="conf", path="nginx/nginx.conf")
    result = run(
        scripts.download_script(download, target_dir=str(target), termination_log=tlog),
        on=[("404 Not Found", lambda: web.set(200, content))],
    )
    assert result.code == 0, result.output
    assert (target / "nginx" / "nginx.conf").read_bytes() == content
    assert os.listdir(target / "nginx") == ["nginx.conf"]  # no temporary file left
    assert result.message == f"downloaded {web.url}/nginx.conf ({len(content)} bytes)"
    # one line per failed attempt: how many attempts the 404 got depends on the pace
    assert set(result.lines("waiting:")) == {
        f"waiting: download {web.url}/nginx.conf: server returned error: HTTP/1.0 404 Not Found"
    }


def test_download_timeout(run: Runner, tmp_path: Path, tlog: str, web: Web) -> None:
    web.set(500)
    download = Download(url=web.url + "/x", volume="conf", path="x")
    script = scripts.download_script(
        download, timeout_seconds=2, target_dir=str(tmp_path), termination_log=tlog
    )
    result = run(script)
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.message == (
        f"WaitTimeout: download {web.url}/x not met after 2s: "
        "server returned error: HTTP/1.0 500 Internal Server Error"
    )
    assert not (tmp_path / "x").exists()
    assert result.seconds < 5


# --- copyAssets -------------------------------------------------------------------------


@pytest.fixture
def tools(run: Runner, tmp_path: Path) -> Path:
    """Run the tools container's script: busybox copied into a tools directory."""
    tools_dir = tmp_path / "tools"
    tools_dir.mkdir()
    tools_log = tmp_path / "tools-termination-log"
    script = scripts.tools_script(BUSYBOX, str(tools_dir), termination_log=str(tools_log))
    result = run(script)
    assert result.code == 0, result.output
    target = tools_dir / "busybox"
    assert tools_log.read_text() == f"{BUSYBOX} copied to {target} for copyAssets steps\n"
    return tools_dir / "busybox"


def test_tools_refuse_a_dynamic_busybox(run: Runner, tmp_path: Path, tlog: str) -> None:
    dynamic = shutil.which("ls")
    assert dynamic is not None
    script = scripts.tools_script(dynamic, str(tmp_path), termination_log=tlog)
    result = run(script)
    assert result.code == 1
    assert result.message == (
        f"CopyAssets: {dynamic} in the step image is dynamically linked; copyAssets needs a "
        "static busybox (set INITPIPELINE_STEP_IMAGE to e.g. busybox:1.36.1-musl)"
    )
    assert not (tmp_path / "busybox").exists()


def test_tools_can_run_twice(run: Runner, tmp_path: Path, tools: Path) -> None:
    """A restarted Pod finds the read-only copy from last time."""
    script = scripts.tools_script(BUSYBOX, str(tools.parent), termination_log=str(tmp_path / "t"))
    assert run(script).code == 0


def test_copy_assets_without_shell_or_cp(
    run: Runner, tmp_path: Path, tlog: str, tools: Path
) -> None:
    source = tmp_path / "image" / "dist"
    (source / "css").mkdir(parents=True)
    (source / "index.html").write_text("<h1>hi</h1>")
    (source / ".well-known").write_text("x")
    (source / "css" / "site.css").write_text("h1 {}")
    volume = tmp_path / "volume"
    volume.mkdir()
    copy = CopyAssets.model_validate(
        {"image": "assets:1", "from": str(source), "volume": "html", "path": "site"}
    )
    script = scripts.copy_assets_script(
        copy, busybox=str(tools), target_dir=str(volume), termination_log=tlog
    )
    empty_path = tmp_path / "no-tools"
    empty_path.mkdir()
    result = run(script, path=empty_path, argv0=[str(tools), "sh", "-c"])
    assert result.code == 0, result.output
    assert (volume / "site" / "index.html").read_text() == "<h1>hi</h1>"
    assert (volume / "site" / ".well-known").exists()
    assert (volume / "site" / "css" / "site.css").exists()
    assert not (volume / "site" / "dist").exists()  # the content of `from`, not `from`
    assert result.message == f"copied 3 files from assets:1:{source} to volume html/site"

    # a restarted container copies again over its own read-only copies (this proves
    # something only when the tests do not run as root, as the container does not)
    (source / "index.html").write_text("<h1>v2</h1>")
    (source / "index.html").chmod(0o444)
    assert run(script, path=empty_path, argv0=[str(tools), "sh", "-c"]).code == 0
    (volume / "site" / "index.html").chmod(0o444)
    again = run(script, path=empty_path, argv0=[str(tools), "sh", "-c"])
    assert again.code == 0, again.output
    assert (volume / "site" / "index.html").read_text() == "<h1>v2</h1>"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the container's user (65532) can use, outside pytest's private tmp."""
    base = Path(tempfile.mkdtemp(prefix="initpipeline-test-"))
    base.chmod(0o777)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_tools_and_copy_assets_as_the_containers_user(run: Runner, shared_dir: Path) -> None:
    """As uid 65532 (as in the Pod): copy busybox, copy assets, copy again after a restart."""
    if os.geteuid() != 0:
        why = "switching to uid 65532 needs root"
        if in_ci():
            pytest.fail(f"{why}: CI runs every tier as root", pytrace=False)
        pytest.skip(why)
    uid = 65532
    tools_dir, volume, empty = shared_dir / "tools", shared_dir / "volume", shared_dir / "bin"
    for directory in (tools_dir, volume, empty):
        directory.mkdir()
        directory.chmod(0o777)  # an emptyDir
    source = shared_dir / "dist"
    source.mkdir()
    (source / "app.js").write_text("v1")
    (source / "app.js").chmod(0o444)
    tlog = shared_dir / "termination-log"
    tools = run(
        scripts.tools_script(BUSYBOX, str(tools_dir), termination_log=str(tlog)),
        path=empty,
        argv0=[BUSYBOX, "sh", "-c"],
        tlog=tlog,
        user=uid,
    )
    assert tools.code == 0, tools.output
    copy = CopyAssets.model_validate({"image": "a:1", "from": str(source), "volume": "v"})
    script = scripts.copy_assets_script(
        copy, busybox=str(tools_dir / "busybox"), target_dir=str(volume), termination_log=str(tlog)
    )
    argv0 = [str(tools_dir / "busybox"), "sh", "-c"]
    first = run(script, path=empty, argv0=argv0, tlog=tlog, user=uid)
    assert first.code == 0, first.output
    assert (volume / "app.js").stat().st_uid == uid
    (source / "app.js").chmod(0o644)
    (source / "app.js").write_text("v2")
    (source / "app.js").chmod(0o444)
    again = run(script, path=empty, argv0=argv0, tlog=tlog, user=uid)
    assert again.code == 0, again.output
    assert (volume / "app.js").read_text() == "v2"
    # and the tools container itself can run again over its read-only busybox
    tools_again = run(
        scripts.tools_script(BUSYBOX, str(tools_dir), termination_log=str(tlog)),
        path=empty,
        tlog=tlog,
        user=uid,
    )
    assert tools_again.code == 0, tools_again.output


def test_copy_assets_missing_source_fails_clearly(
    run: Runner, tmp_path: Path, tlog: str, tools: Path
) -> None:
    copy = CopyAssets.model_validate({"image": "assets:1", "from": "/no/such/dir", "volume": "v"})
    script = scripts.copy_assets_script(
        copy, busybox=str(tools), target_dir=str(tmp_path), termination_log=tlog
    )
    result = run(script, argv0=[str(tools), "sh", "-c"])
    assert result.code == 1
    assert result.message == "CopyAssets: /no/such/dir does not exist in image assets:1"


# --- prepareVolume ----------------------------------------------------------------------


def test_prepare_volume_creates_and_sets_mode(run: Runner, tmp_path: Path, tlog: str) -> None:
    owner = "999:999" if os.geteuid() == 0 else None
    prepare = PrepareVolume(volume="data", path="redis/data", mode="0750", owner=owner)
    script = scripts.prepare_volume_script(prepare, target_dir=str(tmp_path), termination_log=tlog)
    result = run(script)
    assert result.code == 0, result.output
    info = (tmp_path / "redis" / "data").stat()
    assert stat.S_IMODE(info.st_mode) == 0o750
    if owner:
        assert (info.st_uid, info.st_gid) == (999, 999)
        assert result.message == "prepared volume data/redis/data: mode 0750, owner 999:999"
    else:
        assert result.message == "prepared volume data/redis/data: mode 0750"


def test_prepare_volume_failure_is_reported(run: Runner, tmp_path: Path, tlog: str) -> None:
    (tmp_path / "file").write_text("in the way")
    prepare = PrepareVolume(volume="data", path="file/sub")
    script = scripts.prepare_volume_script(prepare, target_dir=str(tmp_path), termination_log=tlog)
    result = run(script)
    assert result.code == 1
    # then mkdir's own error, ending with the system's (strerror) text
    prefix = "PrepareVolume: cannot create volume data/file/sub: "
    assert result.message.startswith(prefix)
    assert re.fullmatch(
        rf"mkdir: can't create directory '{re.escape(str(tmp_path))}/file/': \S.*",
        result.message.removeprefix(prefix),
    )


# --- as rendered ------------------------------------------------------------------------


def test_rendered_wait_container_runs(run: Runner, shared_dir: Path, applets: Path) -> None:
    """The command of a rendered wait container, exactly as the Pod carries it."""
    from initpipeline.render import render_pod
    from initpipeline.spec import parse_pipeline

    ready = shared_dir / "ready"
    ready.touch()
    body = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "steps": [
                {"name": "w", "waitFor": [{"dns": "localhost"}, {"file": str(ready)}]},
            ],
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
    }
    pod = render_pod(parse_pipeline(body), 0, "busybox")
    command = pod["spec"]["initContainers"][0]["command"]
    # as uid 65532 when root, so the default /dev/termination-log cannot be created here
    user = 65532 if os.geteuid() == 0 else None
    bin_dir = shared_dir / "bin"
    bin_dir.mkdir()
    for applet in applets.iterdir():
        (bin_dir / applet.name).symlink_to(BUSYBOX)
    result = run(command[-1], argv0=[BUSYBOX, *command[:-1]], path=bin_dir, user=user)
    assert result.code == 0, result.output
    last = result.output.splitlines()[-1]
    assert re.fullmatch(rf"dns localhost resolved after \ds; file {ready} exists after \ds", last)


def test_service_port_host_follows_the_namespace() -> None:
    step = wait_step([{"service": "db", "port": 5432}, {"service": "data/db", "port": 5432}])
    assert [scripts.service_host(target) for target in step.targets] == ["db", "db.data.svc"]


def test_command_attempts_are_bounded(
    run: Runner, tlog: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scripts.wait, "COMMAND_TIMEOUT", 1)
    step = wait_step([{"command": ["sleep", "30"]}], timeout=3)
    result = run(scripts.wait_script(step, termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.lines("waiting:") == ["waiting: command sleep 30: no exit within 1s"]


# --- SIGTERM: a deleted Pod's step exits at once ----------------------------------------
# Each script is stopped while it is in its longest command; the kubelet sends SIGTERM to
# the container's PID 1 (the shell) only. `reached` returns once the script is observably
# in that command; `limit` bounds the wait for the exit (TimeoutExpired fails the test).

STOP_LIMIT = 5


def reached_file(path: Path, within: float = 20) -> Callable[[], None]:
    """Returns once `path` exists (the script's long command created it)."""

    def wait() -> None:
        deadline = time.monotonic() + within
        while not path.exists():
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.02)

    return wait


def slow(name: str, marker: Path) -> str:
    """A shell function, to put in front of a script, that stands for a slow `name` command
    (a large tree, a slow network filesystem): it says it started, then takes 60 s."""
    return f"{name}() {{ : >{marker}; sleep 60; }}\n"


def test_download_stops_on_sigterm_while_wget_waits_for_the_server(
    run: Runner, tmp_path: Path, tlog: str, port_later: PortLater
) -> None:
    port_later.open()  # accepts and never answers: wget waits up to its 900 s attempt limit
    download = Download(url=f"http://127.0.0.1:{port_later.port}/big", volume="v", path="big")
    script = scripts.download_script(download, target_dir=str(tmp_path), termination_log=tlog)
    result = run(
        script,
        limit=STOP_LIMIT,
        reached=lambda: assert_set(port_later.accepted),
    )
    assert result.code == 143
    assert not list(tmp_path.glob(".big.initpipeline-tmp*"))  # the partial file is gone


def assert_set(event: threading.Event, within: float = 20) -> None:
    assert event.wait(within), "the script never connected"


def test_download_stops_on_sigterm_during_its_backoff(
    run: Runner, tmp_path: Path, tlog: str, web: Web
) -> None:
    web.set(500)
    download = Download(url=web.url + "/x", volume="v", path="x")
    script = scripts.download_script(download, target_dir=str(tmp_path), termination_log=tlog)
    marker = tmp_path / "sleeping"
    # the backoff's sleep announces itself, then sleeps as long as the real one may
    script = script.replace("set -u\n", "set -u\n" + slow("sleep", marker), 1)
    result = run(script, limit=STOP_LIMIT, reached=reached_file(marker))
    assert result.code == 143
    error = "server returned error: HTTP/1.0 500 Internal Server Error"
    assert set(result.lines("waiting:")) == {f"waiting: download {web.url}/x: {error}"}


def test_wait_stops_on_sigterm_while_a_check_runs(run: Runner, tmp_path: Path, tlog: str) -> None:
    marker = tmp_path / "checking"
    step = wait_step([{"command": ["sh", "-c", f": >{marker}; sleep 60"]}])
    result = run(
        scripts.wait_script(step, termination_log=tlog),
        limit=STOP_LIMIT,
        reached=reached_file(marker),
    )
    assert result.code == 143


def test_copy_assets_stops_on_sigterm_while_copying(
    run: Runner, tmp_path: Path, tlog: str, tools: Path
) -> None:
    source = tmp_path / "dist"
    source.mkdir()
    (source / "a.js").write_text("a")
    marker = tmp_path / "copying"
    wrapper = tmp_path / "busybox-wrapper"  # `$bb cp` announces itself, then takes 60 s
    wrapper.write_text(
        f'#!{BUSYBOX} sh\nif [ "$1" = cp ]; then : >{marker}; exec {BUSYBOX} sleep 60; fi\n'
        f'exec {tools} "$@"\n'
    )
    wrapper.chmod(0o755)
    copy = CopyAssets.model_validate({"image": "a:1", "from": str(source), "volume": "v"})
    volume = tmp_path / "volume"
    volume.mkdir()
    script = scripts.copy_assets_script(
        copy, busybox=str(wrapper), target_dir=str(volume), termination_log=tlog
    )
    result = run(
        script, limit=STOP_LIMIT, argv0=[str(tools), "sh", "-c"], reached=reached_file(marker)
    )
    assert result.code == 143


@pytest.mark.parametrize("command", ["mkdir", "chown", "chmod"])
def test_prepare_volume_stops_on_sigterm(
    run: Runner, tmp_path: Path, tlog: str, command: str
) -> None:
    marker = tmp_path / "preparing"
    prepare = PrepareVolume(volume="data", path="d", mode="0750", owner="0:0")
    script = scripts.prepare_volume_script(prepare, target_dir=str(tmp_path), termination_log=tlog)
    mkdir = "" if command == "mkdir" else "mkdir() { :; }\n"
    others = "".join(f"{name}() {{ :; }}\n" for name in ("chown", "chmod") if name != command)
    result = run(
        slow(command, marker) + mkdir + others + script,
        limit=STOP_LIMIT,
        reached=reached_file(marker),
    )
    assert result.code == 143


def test_tools_stop_on_sigterm_while_copying_busybox(
    run: Runner, tmp_path: Path, tlog: str
) -> None:
    marker = tmp_path / "copying"
    script = scripts.tools_script(BUSYBOX, str(tmp_path), termination_log=tlog)
    result = run(slow("cp", marker) + script, limit=STOP_LIMIT, reached=reached_file(marker))
    assert result.code == 143


# --- writer and reader together: what the script writes is what the status tells ----------


def one_step_pipeline(step: dict[str, Any]) -> Any:
    return parse_pipeline(
        {
            "metadata": {"name": "p", "namespace": "ns", "generation": 1},
            "spec": {
                "steps": [step],
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "app", "image": "app:1"}],
                    }
                },
            },
        }
    )


def pod_of(step: str, state: dict[str, Any], phase: str = "Pending") -> dict[str, Any]:
    """A Pod whose only init container is in `state`, shaped as the kubelet writes it."""
    return {
        "metadata": {"name": "p-0", "labels": {PIPELINE_LABEL: "p"}},
        "spec": {"restartPolicy": "Never"},
        "status": {
            "phase": phase,
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [{"name": step, "restartCount": 0, "state": state}],
        },
    }


def terminated(result: Run) -> dict[str, Any]:
    """The kubelet's `terminated` state of a container that ran `result`."""
    return {
        "terminated": {
            "exitCode": result.code,
            "reason": "Error",
            "message": result.message + "\n",
            "startedAt": "2026-11-25T10:00:00Z",
            "finishedAt": "2026-11-25T10:00:02Z",
        }
    }


NOW = datetime(2026, 11, 25, 10, 1, tzinfo=UTC)


def test_wait_timeout_reads_the_same_in_the_status_and_the_event(run: Runner, tlog: str) -> None:
    target = f"127.0.0.1:{free_port()}"
    body = {"name": "wait-db", "timeoutSeconds": 2, "waitFor": [{"tcp": target}]}
    step = Step.model_validate(body)
    result = run(scripts.wait_script(step, termination_log=tlog))
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.message == f"WaitTimeout: tcp {target} not met after 2s"

    pipeline = one_step_pipeline(body)
    status = derive_status(
        pipeline, [pod_of("wait-db", terminated(result), "Failed")], {}, None, NOW
    )
    assert status["steps"][0]["reason"] == "WaitTimeout"
    assert status["steps"][0]["message"] == f"WaitTimeout: tcp {target} not met after 2s"
    assert status["message"] == f"step 1/1 wait-db: timed out after 2s waiting for tcp {target}"
    [event] = step_events(None, status)
    assert event.message == f"Step 1/1 wait-db timed out after 2s waiting for tcp {target}"


def test_operator_placeholder_lines_never_reach_the_status(
    run: Runner, tmp_path: Path, tlog: str
) -> None:
    """The Pod prints `job migrate: checked by the operator` while it waits for its release;
    the status shows the operator's own finding only."""
    body = {"name": "wait-db", "timeoutSeconds": 2, "waitFor": [{"job": "migrate"}]}
    step = Step.model_validate(body)
    result = run(
        scripts.wait_script(step, termination_log=tlog, signal_path=str(tmp_path / "released"))
    )
    assert result.lines("waiting:") == ["waiting: job migrate: checked by the operator"]
    report = messages.wait_report(result.output.rsplit("WaitTimeout", 1)[0])
    assert report is None

    running = {"running": {"startedAt": "2026-11-25T10:00:00Z"}}
    pipeline = one_step_pipeline(body)
    status = derive_status(
        pipeline,
        [pod_of("wait-db", running)],
        {"wait-db": ["job migrate: job does not exist"]},
        None,
        NOW,
        # even when handed the raw lines, not wait_report()'s answer
        wait_reports={("p-0", "wait-db"): "\n".join(result.lines("waiting:"))},
    )
    assert status["steps"][0]["waitingOn"] == ["job migrate: job does not exist"]
    assert status["message"] == "step 1/1 wait-db: waiting for job migrate: job does not exist"


def test_download_with_the_right_sha256_keeps_the_file(
    run: Runner, tmp_path: Path, tlog: str, web: Web
) -> None:
    content = b"worker_processes 1;\n"
    web.set(200, content)
    digest = hashlib.sha256(content).hexdigest()
    download = Download(url=web.url + "/f", volume="v", path="f", sha256=digest.upper())
    result = run(scripts.download_script(download, target_dir=str(tmp_path), termination_log=tlog))
    assert result.code == 0, result.output
    assert (tmp_path / "f").read_bytes() == content
    assert result.message == f"downloaded {web.url}/f ({len(content)} bytes)"


def test_download_with_a_wrong_sha256_fails_naming_both_digests(
    run: Runner, tmp_path: Path, tlog: str, web: Web
) -> None:
    web.set(200, b"tampered")
    actual = hashlib.sha256(b"tampered").hexdigest()
    expected = "0" * 64
    body = {
        "name": "fetch",
        "download": {"url": web.url + "/f", "volume": "v", "path": "f", "sha256": expected},
    }
    step = Step.model_validate(body)
    assert step.download is not None
    volume = tmp_path / "volume"
    volume.mkdir()
    result = run(
        scripts.download_script(step.download, target_dir=str(volume), termination_log=tlog)
    )
    assert result.code == 1
    assert result.message == (
        f"ChecksumMismatch: sha256 of {web.url}/f is {actual}, expected {expected}"
    )
    assert os.listdir(volume) == []  # neither the file nor a temporary one

    status = derive_status(
        one_step_pipeline(body), [pod_of("fetch", terminated(result), "Failed")], {}, None, NOW
    )
    assert (status["steps"][0]["reason"], status["steps"][0]["exitCode"]) == (
        "ChecksumMismatch",
        1,
    )
    assert status["message"] == (
        f"step 1/1 fetch: exit code 1 (ChecksumMismatch): sha256 of {web.url}/f is {actual}, "
        f"expected {expected}"
    )


def test_download_timeout_reads_the_same_in_the_status(
    run: Runner, tmp_path: Path, tlog: str, web: Web
) -> None:
    web.set(500)
    body = {
        "name": "fetch",
        "timeoutSeconds": 2,
        "download": {"url": web.url + "/x", "volume": "v", "path": "x"},
    }
    step = Step.model_validate(body)
    assert step.download is not None
    script = scripts.download_script(
        step.download, timeout_seconds=2, target_dir=str(tmp_path), termination_log=tlog
    )
    result = run(script)
    error = "server returned error: HTTP/1.0 500 Internal Server Error"
    assert result.code == WAIT_TIMEOUT_EXIT_CODE
    assert result.message == f"WaitTimeout: download {web.url}/x not met after 2s: {error}"

    pod = pod_of("fetch", terminated(result), "Failed")
    status = derive_status(one_step_pipeline(body), [pod], {}, None, NOW)
    assert status["message"] == (
        f"step 1/1 fetch: exit code 124 (Error): timed out after 2s waiting for download "
        f"{web.url}/x (last error: {error})"
    )
