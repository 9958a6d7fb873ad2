"""renderConfig: the template syntax, the container's program (`initpipeline-render-config`),
the step as rendered into the Pod, and the spec's checks.

The program runs here as it runs in the operator's image: its console script, with the
environment render.py gives the container, writing its termination message to a file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.test_render import IMAGE, init_containers, pipeline_of, volumes

from initpipeline import cli, messages, renderconfig
from initpipeline.names import TARGET_DIR
from initpipeline.render import render_pod
from initpipeline.spec import InvalidSpec
from initpipeline.status.derive import derive_status
from initpipeline.status.kubelet import step_view
from initpipeline.status.states import StepState

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).parents[2] / "deploy" / "examples" / "16-render-config.yaml"
RENDER_IMAGE = "registry.test/initpipeline:1"
SECRET = "tok-3f9c2e7a-do-not-log"  # the example's Secret value
PROGRAM = shutil.which(renderconfig.COMMAND)


# --------------------------------------------------------------------------- syntax


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("listen ${PORT};", "listen 8080;"),
        ("${PORT}${PORT}", "80808080"),
        ("proxy_set_header Host $host;", "proxy_set_header Host $host;"),  # nginx's own
        ("price: $$5", "price: $5"),
        ("literal $${PORT}", "literal ${PORT}"),
        ("$$${PORT}", "$8080"),
        ("$$$${PORT}", "$${PORT}"),
        ("$(PORT) $ {PORT} $", "$(PORT) $ {PORT} $"),
        ("${NESTED}", "${PORT}"),  # a value is inserted as it is, never read again
        ("", ""),
    ],
)
def test_substitution_and_escaping(template: str, rendered: str) -> None:
    values = {"PORT": "8080", "NESTED": "${PORT}"}
    assert renderconfig.render(template, values, list(values)) == rendered


def test_a_missing_variable_is_named_with_its_line_and_why() -> None:
    template = "a ${HOST}\nb ${PORT}\nc ${TOKEN} ${HOST}\n"
    with pytest.raises(renderconfig.MissingVariables) as raised:
        renderconfig.render(template, {"PORT": "1"}, ["PORT", "TOKEN"])
    assert str(raised.value) == (
        "MissingVariable: ${HOST} (line 1) is not in env; "
        "${TOKEN} (line 3) is not set: its optional source is missing"
    )


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("ok\n${HOST", "line 2: '${' without a closing '}' (write $$ for a literal $)"),
        ("${HOST\n}", "line 1: '${' without a closing '}' (write $$ for a literal $)"),
        (
            "x ${1ST}",
            "line 1: '${1ST}' is not a variable reference: a name is letters, digits and _, "
            "not starting with a digit (write $$ for a literal $)",
        ),
        (
            "${HOST:-localhost}",
            "line 1: '${HOST:-localhost}' is not a variable reference: a name is letters, "
            "digits and _, not starting with a digit (write $$ for a literal $)",
        ),
        (
            "${}",
            "line 1: '${}' is not a variable reference: a name is letters, digits and _, "
            "not starting with a digit (write $$ for a literal $)",
        ),
    ],
)
def test_a_malformed_reference_is_an_error_naming_its_line(template: str, error: str) -> None:
    with pytest.raises(renderconfig.TemplateError) as raised:
        renderconfig.parse(template)
    assert str(raised.value) == error


# --------------------------------------------------------------------------- the program


def run_program(
    tmp_path: Path, template: str | None, variables: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """The console script with the container's environment; its termination message."""
    assert PROGRAM, f"{renderconfig.COMMAND} is not installed (uv sync)"
    env = {"PATH": os.environ["PATH"]}
    if template is not None:
        env[renderconfig.TEMPLATE_ENV] = template
    env.update({renderconfig.VARIABLE_PREFIX + k: v for k, v in variables.items()})
    log = tmp_path / "termination-log"
    argv = [PROGRAM, "--termination-log", str(log), "--label", "volume conf/app.conf", *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    return result, log.read_text() if log.exists() else ""


@pytest.mark.parametrize("mode", ["0644", "0440", "0600"])
def test_the_file_is_written_with_its_mode_and_a_result_naming_no_value(
    tmp_path: Path, mode: str
) -> None:
    dest = tmp_path / "volume" / "conf.d" / "app.conf"
    template = "# ${NAME}\npassword=${PASSWORD}\nhost $host\n"
    variables = {"NAME": "shop", "PASSWORD": SECRET, "UNUSED": "x"}
    result, log = run_program(
        tmp_path, template, variables, "--to", str(dest), "--mode", mode, *variables
    )
    assert result.returncode == 0, result.stderr
    assert dest.read_text() == f"# shop\npassword={SECRET}\nhost $host\n"
    assert stat.S_IMODE(dest.stat().st_mode) == int(mode, 8)
    size = len(dest.read_bytes())
    expected = f"rendered volume conf/app.conf ({size} bytes, mode {mode}) with NAME, PASSWORD"
    assert log == expected + "\n"
    assert result.stdout == expected + "\n"
    assert SECRET not in result.stdout + result.stderr + log
    assert os.listdir(dest.parent) == ["app.conf"]  # no temporary file left


def test_a_file_already_there_is_replaced(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    dest.write_text("old and longer than the new text\n")
    dest.chmod(0o600)
    result, _ = run_program(tmp_path, "new\n", {}, "--to", str(dest), "--mode", "0644")
    assert result.returncode == 0, result.stderr
    assert dest.read_text() == "new\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_a_missing_variable_fails_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    template = "user=${USER_NAME}\npassword=${PASSWORD}\n"
    # PASSWORD is declared (an optional Secret key that is missing), USER_NAME is not.
    result, log = run_program(
        tmp_path, template, {}, "--to", str(dest), "--mode", "0600", "PASSWORD"
    )
    assert result.returncode == 1
    message = (
        "MissingVariable: ${USER_NAME} (line 1) is not in env; "
        "${PASSWORD} (line 2) is not set: its optional source is missing"
    )
    assert log == message + "\n"
    assert result.stderr == message + "\n"
    assert not dest.exists()


def test_values_with_other_bytes_are_written_as_they_are(tmp_path: Path) -> None:
    dest = tmp_path / "app.conf"
    value = "grüße, 東京, tab\there"
    result, _ = run_program(
        tmp_path, "${V}\n", {"V": value}, "--to", str(dest), "--mode", "644", "V"
    )
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == f"{value}\n".encode()


def test_a_file_it_cannot_write_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "conf.d").write_text("a file where the directory should be")
    result, log = run_program(
        tmp_path, "x", {}, "--to", str(tmp_path / "conf.d" / "app.conf"), "--mode", "0644"
    )
    assert result.returncode == 1
    assert log == "RenderConfig: cannot write volume conf/app.conf: File exists\n"


def test_the_status_reads_a_missing_variable_as_the_steps_reason() -> None:
    pipeline = pipeline_of([render_step()])
    message = messages.missing_variables([("TOKEN", 3, False)])
    terminated = {"exitCode": 1, "reason": "Error", "message": message + "\n"}
    view = step_view(pipeline.spec.steps[0], {"state": {"terminated": terminated}}, "Pending")
    assert view.state is StepState.FAILED
    assert view.reason == messages.MISSING_VARIABLE
    assert messages.failure_detail(view.reason, view.message) == ("${TOKEN} (line 3) is not in env")


def test_a_running_step_says_what_it_renders() -> None:
    pipeline = pipeline_of([render_step()])
    pod = render_pod(pipeline, 0, IMAGE, render_image=RENDER_IMAGE)
    running = {"name": "render", "state": {"running": {"startedAt": "2026-12-06T10:00:00Z"}}}
    pod["status"] = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [running],
    }
    st = derive_status(pipeline, [pod], {}, None, datetime(2026, 12, 6, 10, 0, 1, tzinfo=UTC))
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == (
        "Initializing",
        "step 1/1 render: rendering conf/nginx/app.conf",
    )


# --------------------------------------------------------------------------- the Pod


def render_step(**config: Any) -> dict[str, Any]:
    fields = {
        "template": "listen ${PORT};\n",
        "env": [{"name": "PORT", "value": "8080"}],
        "volume": "conf",
        "path": "nginx/app.conf",
        **config,
    }
    return {"name": "render", "renderConfig": fields}


def rendered_container(**config: Any) -> dict[str, Any]:
    pod = render_pod(pipeline_of([render_step(**config)]), 0, IMAGE, render_image=RENDER_IMAGE)
    return init_containers(pod)["render"]


def test_the_step_runs_the_operator_image_without_a_shell_hardened() -> None:
    pod = render_pod(pipeline_of([render_step(mode=0o640)]), 0, IMAGE, render_image=RENDER_IMAGE)
    container = init_containers(pod)["render"]
    assert container["image"] == RENDER_IMAGE
    assert container["command"] == [
        renderconfig.COMMAND,
        "--to",
        f"{TARGET_DIR}/nginx/app.conf",
        "--mode",
        "0640",
        "--label",
        "volume conf/nginx/app.conf",
        "PORT",
    ]
    assert container["volumeMounts"] == [{"name": "conf", "mountPath": TARGET_DIR}]
    assert volumes(pod)["conf"] == {"name": "conf", "emptyDir": {}}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_variables_reach_the_container_as_references_the_kubelet_resolves() -> None:
    env = [
        {"name": "HOST", "value": "shop.example.com"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}},
        {
            "name": "LEVEL",
            "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}},
        },
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    template = "${HOST} ${TOKEN} ${LEVEL} ${POD_IP}"
    container = rendered_container(template=template, env=env)
    prefix = renderconfig.VARIABLE_PREFIX
    assert container["env"] == [
        {"name": renderconfig.TEMPLATE_ENV, "value": template},
        {"name": f"{prefix}HOST", "value": "shop.example.com"},
        {"name": f"{prefix}TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}},
        {
            "name": f"{prefix}LEVEL",
            "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}},
        },
        {"name": f"{prefix}POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    assert container["command"][-4:] == ["HOST", "TOKEN", "LEVEL", "POD_IP"]


def test_a_template_from_a_configmap_is_a_reference_too() -> None:
    ref = {"name": "nginx-template", "key": "default.conf.template"}
    container = rendered_container(template=None, templateFrom={"configMapKeyRef": ref})
    assert container["env"][0] == {
        "name": renderconfig.TEMPLATE_ENV,
        "valueFrom": {"configMapKeyRef": ref},
    }


def kubelet_expand(text: str, defined: dict[str, str]) -> str:
    """What the kubelet does to an env value or argument (Kubernetes'
    third_party/forked/golang/expansion): `$$` is `$`, `$(NAME)` of a defined variable is its
    value, anything else stays."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            end = text.find(")", i + 2) if following == "(" else -1
            if end != -1:
                name = text[i + 2 : end]
                out.append(defined.get(name, f"$({name})"))
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_literal_text_survives_the_kubelets_expansion() -> None:
    template = "a $(X) $$ ${PORT} $host $$(HOME) $"
    value = "$(HOME)$$x$"
    container = rendered_container(
        template=template, env=[{"name": "PORT", "value": value}], path="$(X)/a.conf"
    )
    defined = {"X": "expanded", "HOME": "expanded"}
    assert kubelet_expand(container["env"][0]["value"], defined) == template
    assert kubelet_expand(container["env"][1]["value"], defined) == value
    assert kubelet_expand(container["command"][2], defined) == f"{TARGET_DIR}/$(X)/a.conf"
    # Text without `$(` or `$$` is shown as written.
    assert rendered_container()["env"][0]["value"] == "listen ${PORT};\n"


def test_render_output_shows_the_secret_as_a_reference_never_its_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The example's file holds the Secret itself; `initpipeline render -f` prints the Pod.
    printed = cli.render(str(EXAMPLE), IMAGE, RENDER_IMAGE)
    assert SECRET in EXAMPLE.read_text()
    assert SECRET not in printed
    [pod] = yaml.safe_load_all(printed)
    env = {e["name"]: e for e in init_containers(pod)["render-nginx-conf"]["env"]}
    assert env[renderconfig.VARIABLE_PREFIX + "UPSTREAM_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "upstream-token", "key": "token"}
    }


# --------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        (
            {"templateFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            "spec.steps[0].renderConfig",
            "renderConfig needs exactly one of template, templateFrom",
        ),
        (
            {"template": None},
            "spec.steps[0].renderConfig",
            "renderConfig needs exactly one of template, templateFrom",
        ),
        (
            {"template": "${PORT} ${HOST}\n${TOKEN}"},
            "spec.steps[0].renderConfig.template",
            "uses ${HOST} (line 1), ${TOKEN} (line 2), which env does not declare",
        ),
        (
            {"template": "${PORT"},
            "spec.steps[0].renderConfig.template",
            "line 1: '${' without a closing '}' (write $$ for a literal $)",
        ),
        (
            {"env": [{"name": "PORT"}]},
            "spec.steps[0].renderConfig.env[0]",
            "needs exactly one of value, valueFrom",
        ),
        (
            {"env": [{"name": "PORT", "value": "1"}, {"name": "PORT", "value": "2"}]},
            "spec.steps[0].renderConfig.env",
            "env PORT: declared more than once",
        ),
        (
            {"env": [{"name": "1PORT", "value": "1"}]},
            "spec.steps[0].renderConfig.env[0].name",
            "'1PORT' must be a variable name: letters, digits and _, not starting with a digit",
        ),
        (
            {
                "env": [
                    {
                        "name": "PORT",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": "metadata.name"},
                            "secretKeyRef": {"name": "s", "key": "k"},
                        },
                    }
                ]
            },
            "spec.steps[0].renderConfig.env[0].valueFrom",
            "valueFrom needs exactly one of fieldRef, configMapKeyRef, secretKeyRef",
        ),
        (
            {"env": [{"name": "PORT", "valueFrom": {"fieldRef": {"fieldPath": "spec.x"}}}]},
            "spec.steps[0].renderConfig.env[0].valueFrom.fieldRef.fieldPath",
            "'spec.x' must be one of metadata.name, metadata.namespace, metadata.uid, "
            "metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, "
            "spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs",
        ),
        (
            {"mode": 0o1000},
            "spec.steps[0].renderConfig.mode",
            "Input should be less than or equal to 511",
        ),
        (
            {"path": "../etc/passwd"},
            "spec.steps[0].renderConfig.path",
            "'../etc/passwd' must be a relative path without '..'",
        ),
        (
            {"path": "conf.d/"},
            "spec.steps[0].renderConfig.path",
            "'conf.d/' must be a file path, without a trailing '/'",
        ),
    ],
)
def test_invalid_render_config_names_the_field(
    config: dict[str, Any], field: str, message: str
) -> None:
    step = render_step(**config)
    step["renderConfig"] = {k: v for k, v in step["renderConfig"].items() if v is not None}
    with pytest.raises(InvalidSpec) as raised:
        pipeline_of([step])
    assert (raised.value.field, raised.value.message) == (field, f'{message} (step "render")')
