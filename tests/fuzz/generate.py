"""A seeded generator of InitPipelines for the fuzz tier: valid ones and mutants.

Valid documents are built from the API's step types and wait target kinds (docs/api.md);
mutants start from a valid document or from an InitPipeline of deploy/examples and apply one
to three mutations: a wrong type, a missing or an extra field, a boundary value (empty lists,
0, negative and huge numbers, 63/64/253-character names, long strings), a hostile string
(unicode, quotes, newlines, shell metacharacters, `$(...)`, `..`, reserved paths), or one of
the API's cross-field rules broken on purpose (two actions in a step, duplicated step names,
a step named like a container, a file target outside the step's mounts ...).

Case `i` of seed `s` depends on nothing but `(s, i)`: it is drawn from `random.Random(f"{s}:{i}")`
(string seeds hash the same in every process), so one case can be generated alone, and a
longer corpus starts with the shorter one. No network, no clock.

    python -m tests.fuzz.generate --seed 1 --count 1000 > corpus.yaml   # the whole corpus
    python -m tests.fuzz.generate --seed 1 --case 417                   # one case, to replay

Every template gets `schedulerName: initpipeline-fuzz-unscheduled` (as the integration tests
do): the Pods are created, no scheduler takes them, nothing runs.
"""

from __future__ import annotations

import argparse
import copy
import functools
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
API_VERSION = "initpipeline.io/v1alpha1"
KIND = "InitPipeline"
UNSCHEDULED = "initpipeline-fuzz-unscheduled"
DEFAULT_SEED = 1
DEFAULT_COUNT = 1000
# Share of the corpus that is built valid and left so.
VALID_SHARE = 0.3

STEP_KINDS = ("waitFor", "download", "copyAssets", "prepareVolume", "run", "sidecar")
TARGET_KINDS = ("service", "tcp", "http", "dns", "file", "job", "resource", "command")
IMAGES = (
    "docker.io/library/busybox:1.36.1-musl",
    "localhost/initpipeline/httpd:1",
    "registry.example/team/app@sha256:" + "ab" * 32,
    "myapp:migrations",
)

Doc = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One document of the corpus and how it was made."""

    index: int
    origin: str  # "valid", or what it was mutated from: "example 04-sequential.yaml#0", ...
    mutations: tuple[str, ...]
    document: Doc = field(compare=False)

    @property
    def name(self) -> str:
        return case_name(self.index)

    @property
    def label(self) -> str:
        return f"{self.origin}" + (": " + "; ".join(self.mutations) if self.mutations else "")


def case_name(index: int) -> str:
    """metadata.name of case `index` (mutations of the name keep it as a prefix)."""
    return f"fz{index:05d}"


# ------------------------------------------------------------------ values


def hostile_strings() -> tuple[str, ...]:
    """Strings that break quoting, patterns, paths and length limits."""
    return (
        "",
        " ",
        "a b",
        "UPPER",
        "-leading-dash",
        "trailing-dash-",
        "dot.ted",
        "under_score",
        "x" * 63,
        "x" * 64,
        "x" * 253,
        "x" * 254,
        "y" * 1025,
        "z" * 2049,
        "ünïcødé",
        "名前",
        "emoji-\U0001f680",
        "zero\u200bwidth",
        "nul\x00byte",
        "tab\there",
        "new\nline",
        "carriage\rreturn",
        "'single'",
        '"double"',
        "back\\slash",
        "$(reboot)",
        "`id`",
        "${HOME}",
        "a; rm -rf /",
        "a && b || c",
        "a | b > /etc/passwd",
        "*",
        "%s%n",
        "{{ .Values }}",
        "../../etc/passwd",
        "..",
        "a/../b",
        "/",
        "//",
        "/abs/path",
        "rel/path/",
        "/var/run/initpipeline",
        "/var/run/initpipeline-tools",
        "/var/run/initpipeline-volume",
        "initpipeline-x",
        "http://",
        "ftp://host/file",
        "http://host/pa th",
        "http://[::1]:8080/x",
        "https://user:pw@host:99999/?q=$(x)#f",
        "host:0",
        "host:65536",
        "host:99999",
        "[::1]:80",
        "[zz]:80",
        "10.0.0.1:5432",
        "0750",
        "0999",
        "7777",
        "999:999",
        "-1:-1",
        "1" * 22,
        "ns/name",
        "a/b/c",
        "Ns/Name",
    )


def odd_numbers() -> tuple[Any, ...]:
    return (0, -1, 1, 99, 100, 599, 600, 65535, 65536, 2**31 - 1, 2**31, 2**63, -(2**31), 1.5, 2.0)


def wrong_typed(value: Any) -> tuple[Any, ...]:
    """Values of every JSON type other than `value`'s."""
    candidates: list[Any] = [
        "a-string",
        "5",
        "true",
        7,
        -3,
        2.5,
        True,
        False,
        ["list", "of", "strings"],
        [],
        {"an": "object"},
        {},
        None,
    ]

    def json_type(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int | float):
            return "number"
        return type(v).__name__

    return tuple(c for c in candidates if json_type(c) != json_type(value))


# ------------------------------------------------------------------ valid documents


class Builder:
    """Builds valid pieces of an InitPipeline from one Random."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def label(self, prefix: str = "", length: int | None = None) -> str:
        """A DNS-1123 label (not starting with the reserved prefix)."""
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        size = length or self.r.randint(1, 12)
        body = "".join(self.r.choice(alphabet) for _ in range(size))
        if len(body) > 2 and self.r.random() < 0.3:
            cut = self.r.randint(1, len(body) - 2)
            body = body[:cut] + "-" + body[cut + 1 :]
        name = (prefix + body)[: max(size, len(prefix) + 1)]
        return name

    def host(self) -> str:
        kind = self.r.random()
        if kind < 0.4:
            return self.label()
        if kind < 0.7:
            return ".".join(self.label() for _ in range(self.r.randint(2, 4)))
        if kind < 0.85:
            return ".".join(str(self.r.randint(0, 255)) for _ in range(4))
        return "My-Host.Example.COM"

    def port(self) -> int:
        return self.r.choice((1, 80, 443, 5432, 8080, 65535, self.r.randint(1, 65535)))

    def url(self) -> str:
        scheme = self.r.choice(("http", "https"))
        host = self.host()
        if self.r.random() < 0.4:
            host += f":{self.port()}"
        path = self.r.choice(("", "/", "/health", "/a/b.conf", "/x?y=1&z=2", "/p#frag", "?q"))
        return f"{scheme}://{host}{path}"

    def ref(self) -> str:
        return (f"{self.label()}/" if self.r.random() < 0.3 else "") + self.label()

    def rel_path(self, file: bool = False) -> str:
        parts = [self.label() for _ in range(self.r.randint(1, 3))]
        if file:
            parts[-1] += self.r.choice((".conf", ".json", "", ".tar.gz"))
        return "/".join(parts)

    def command(self) -> list[str]:
        """Any strings are a valid command; hostile ones test the generated scripts."""
        choices: list[list[str]] = [
            ["sh", "-c", "test -s /certs/tls.key"],
            ["true"],
            ["sh", "-c", self.r.choice(hostile_strings()) or "true"],
            ["echo", "$(reboot)", "`id`", "'quoted'", '"dq"', "a\nb"],
            ["grep", "-q", "BEGIN CERTIFICATE", "/certs/tls.crt"],
        ]
        return self.r.choice(choices)

    def target(self, mount_paths: list[str]) -> Doc:
        kind = self.r.choice(TARGET_KINDS)
        if kind == "file" and not mount_paths:
            kind = "dns"
        target: Doc
        if kind == "service":
            target = {"service": self.ref()}
            if self.r.random() < 0.5:
                target["port"] = self.port()
        elif kind == "tcp":
            host = self.host()
            if self.r.random() < 0.1:
                host = self.r.choice(("[::1]", "[fd00::10]", "[2001:db8::1]"))
            target = {"tcp": f"{host}:{self.port()}"}
        elif kind == "http":
            target = {"http": self.url()}
            if self.r.random() < 0.4:
                target["expectStatus"] = self.r.choice((100, 200, 204, 301, 404, 599))
            if self.r.random() < 0.4:
                target["bodyContains"] = self.r.choice(("UP", '{"status":"UP"}', "a'b\"c$(d)"))
        elif kind == "dns":
            target = {"dns": self.host() + self.r.choice(("", "."))}
        elif kind == "file":
            base = self.r.choice(mount_paths)
            target = {"file": base.rstrip("/") + "/" + self.rel_path(file=True)}
        elif kind == "job":
            target = {"job": self.ref()}
        elif kind == "resource":
            resource: Doc = {
                "apiVersion": self.r.choice(
                    ("v1", "cert-manager.io/v1", "apps/v1", "x.io/v1beta1")
                ),
                "kind": self.r.choice(("Certificate", "Deployment", "ConfigMap", "Widget2")),
                "name": ".".join(self.label() for _ in range(self.r.randint(1, 2))),
            }
            if self.r.random() < 0.3:
                resource["namespace"] = self.label()
            if self.r.random() < 0.5:
                resource["condition"] = self.r.choice(("Ready", "Available", "example.io/Synced"))
            target = {"resource": resource}
        else:
            target = {"command": self.command()}
        return target

    def mounts(self) -> list[Doc]:
        paths = sorted({"/" + self.rel_path() for _ in range(self.r.randint(1, 3))})
        mounts: list[Doc] = []
        for path in paths:
            mount: Doc = {"name": self.label(), "mountPath": path}
            if self.r.random() < 0.3:
                mount["readOnly"] = self.r.choice((True, False))
            if self.r.random() < 0.2:
                mount["subPath"] = self.rel_path()
            mounts.append(mount)
        return mounts

    def container(self) -> Doc:
        container: Doc = {"image": self.r.choice(IMAGES)}
        if self.r.random() < 0.7:
            container["command"] = self.command()
        if self.r.random() < 0.3:
            container["args"] = [self.r.choice(hostile_strings()[:40])]
        if self.r.random() < 0.3:
            variable = "VAR_" + self.label().upper().replace("-", "_")
            container["env"] = [{"name": variable, "value": "v"}]
        if self.r.random() < 0.3:
            container["securityContext"] = {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            }
        return container

    def step(self, name: str) -> Doc:
        kind = self.r.choice(STEP_KINDS)
        step: Doc = {"name": name}
        if self.r.random() < 0.3:
            step["timeoutSeconds"] = self.r.choice((1, 5, 300, 2**31 - 1))
        if kind == "waitFor":
            mounts = self.mounts() if self.r.random() < 0.5 else []
            paths = [m["mountPath"] for m in mounts]
            step["waitFor"] = [self.target(paths) for _ in range(self.r.randint(1, 4))]
            if mounts:
                step["volumeMounts"] = mounts
        elif kind == "download":
            download: Doc = {"url": self.url(), "volume": self.label(), "path": self.rel_path(True)}
            if self.r.random() < 0.3:
                digits = "0123456789abcdefABCDEF"
                download["sha256"] = "".join(self.r.choice(digits) for _ in range(64))
            step["download"] = download
        elif kind == "copyAssets":
            assets: Doc = {
                "image": self.r.choice(IMAGES),
                "from": "/" + self.rel_path(),
                "volume": self.label(),
            }
            if self.r.random() < 0.5:
                assets["path"] = self.r.choice(("", self.rel_path(), self.rel_path() + "/"))
            step["copyAssets"] = assets
        elif kind == "prepareVolume":
            prepare: Doc = {"volume": self.label()}
            options = {
                "path": self.rel_path(),
                "mode": self.r.choice(("0750", "755", "0700", "644")),
                "owner": self.r.choice(("999", "999:999", "0:0", "65532:65532")),
            }
            chosen = self.r.sample(sorted(options), self.r.randint(1, 3))
            prepare.update({key: options[key] for key in sorted(chosen)})
            step["prepareVolume"] = prepare
        elif kind == "run":
            step["run"] = self.container()
        else:
            sidecar = self.container()
            if self.r.random() < 0.5:
                sidecar["readinessProbe"] = {
                    "tcpSocket": {"port": self.port()},
                    "periodSeconds": self.r.choice((1, 2, 10)),
                }
            if self.r.random() < 0.2:
                sidecar["restartPolicy"] = "Always"
            step["sidecar"] = sidecar
        return step

    def pipeline(self, name: str) -> Doc:
        containers = [{"name": "app", **self.container()}]
        if self.r.random() < 0.3:
            containers.append({"name": "helper", "image": self.r.choice(IMAGES)})
        taken = {c["name"] for c in containers}
        steps = []
        for _ in range(self.r.randint(1, 5)):
            step_name = self.label()
            while step_name in taken:
                step_name = self.label()
            taken.add(step_name)
            steps.append(self.step(step_name))
        pod_spec: Doc = {"containers": containers}
        if self.r.random() < 0.5:
            pod_spec["restartPolicy"] = self.r.choice(("Always", "OnFailure", "Never"))
        if self.r.random() < 0.3:
            pod_spec["volumes"] = [{"name": "shared", "emptyDir": {}}]
        template: Doc = {"spec": pod_spec}
        if self.r.random() < 0.5:
            template = {"metadata": {"labels": {"app": name}}, **template}
        spec: Doc = {}
        if self.r.random() < 0.4:
            spec["replicas"] = self.r.choice((0, 1, 2))
        if self.r.random() < 0.2:
            spec["suspend"] = self.r.choice((True, False))
        spec["steps"] = steps
        spec["template"] = template
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


@functools.cache
def _examples() -> tuple[tuple[str, Doc], ...]:
    found: list[tuple[str, Doc]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        pipelines = [d for d in docs if d.get("kind") == KIND]
        found += [(f"{path.name}#{n}", d) for n, d in enumerate(pipelines)]
    return tuple(found)


def example_pipelines() -> list[tuple[str, Doc]]:
    """The InitPipelines of deploy/examples, in file order: ("04-sequential.yaml#0", doc)."""
    return [(origin, copy.deepcopy(doc)) for origin, doc in _examples()]


# ------------------------------------------------------------------ mutations

Path_ = tuple[str | int, ...]


def _walk(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) below the document's root, in document order."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _text(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


class Mutator:
    def __init__(self, rng: random.Random, builder: Builder) -> None:
        self.r = rng
        self.b = builder
        self.structural: list[Callable[[Doc], str | None]] = [
            self.wrong_type,
            self.drop_field,
            self.extra_field,
            self.hostile_string,
            self.odd_number,
            self.list_boundary,
            self.null_value,
        ]
        self.rules: list[Callable[[Doc], str | None]] = [
            self.two_actions,
            self.no_action,
            self.two_target_kinds,
            self.misplaced_target_option,
            self.duplicate_step_name,
            self.step_named_like_container,
            self.reserved_names,
            self.step_name_length,
            self.volume_mounts_elsewhere,
            self.file_outside_mounts,
            self.bare_prepare_volume,
            self.container_name_or_restart_policy,
            self.init_containers,
            self.operator_labels,
            self.restart_policy,
            self.pipeline_name,
            self.too_many,
            self.sidecar_probe,
        ]

    def mutate(self, doc: Doc) -> str:
        """Apply one mutation; what it did."""
        pool = self.structural if self.r.random() < 0.55 else self.rules
        for _ in range(20):
            try:
                done = self.r.choice(pool)(doc)
            except (KeyError, TypeError, AttributeError, IndexError):
                done = None  # not applicable to what earlier mutations left
            if done:
                return done
        return self.extra_field(doc) or "nothing"

    # -- structural: anywhere in spec

    def _pick(self, doc: Doc, want: Callable[[Path_, Any], bool]) -> Path_ | None:
        spec_paths = [p for p, v in _walk(doc) if p[:1] == ("spec",) and want(p, v)]
        return self.r.choice(spec_paths) if spec_paths else None

    def wrong_type(self, doc: Doc) -> str | None:
        path = self._pick(doc, lambda p, v: True)
        if path is None:
            return None
        value = self.r.choice(wrong_typed(_get(doc, path)))
        _set(doc, path, value)
        return f"wrong type at {_text(path)}: {value!r}"

    def drop_field(self, doc: Doc) -> str | None:
        path = self._pick(doc, lambda p, v: isinstance(p[-1], str))
        if path is None:
            return None
        del _get(doc, path[:-1])[path[-1]]
        return f"missing {_text(path)}"

    def extra_field(self, doc: Doc) -> str | None:
        path = self._pick(doc, lambda p, v: isinstance(v, dict))
        where: Path_ = path if path is not None else ()
        key = self.r.choice(("extra", "unknownField", "Name", "timeout_seconds", "nameX"))
        _get(doc, where)[key] = self.r.choice(("x", 1, {"nested": True}, ["y"]))
        return f"extra field {_text((*where, key))}"

    def hostile_string(self, doc: Doc) -> str | None:
        path = self._pick(doc, lambda p, v: isinstance(v, str))
        if path is None:
            return None
        value = self.r.choice(hostile_strings())
        _set(doc, path, value)
        return f"hostile string at {_text(path)}: {value[:40]!r}"

    def odd_number(self, doc: Doc) -> str | None:
        numeric = ("replicas", "timeoutSeconds", "port", "expectStatus", "periodSeconds")
        path = self._pick(
            doc,
            lambda p, v: (isinstance(v, int) and not isinstance(v, bool)) or p[-1] in numeric,
        )
        if path is None:
            spec = doc["spec"]
            step = self.r.choice(spec.get("steps") or [{}]) if isinstance(spec, dict) else {}
            if not isinstance(step, dict):
                return None
            value = self.r.choice(odd_numbers())
            step["timeoutSeconds"] = value
            return f"timeoutSeconds {value!r}"
        value = self.r.choice(odd_numbers())
        _set(doc, path, value)
        return f"number at {_text(path)}: {value!r}"

    def list_boundary(self, doc: Doc) -> str | None:
        path = self._pick(doc, lambda p, v: isinstance(v, list) and bool(v))
        if path is None:
            return None
        items = _get(doc, path)
        how = self.r.choice(("empty", "duplicate", "many"))
        if how == "empty":
            _set(doc, path, [])
        elif how == "duplicate":
            items.append(copy.deepcopy(items[0]))
        else:
            items += [copy.deepcopy(items[0]) for _ in range(self.r.choice((16, 32, 64)))]
        return f"list {_text(path)}: {how}"

    def null_value(self, doc: Doc) -> str | None:
        path = self._pick(doc, lambda p, v: isinstance(p[-1], str))
        if path is None:
            return None
        _set(doc, path, None)
        return f"null at {_text(path)}"

    # -- the API's rules, broken on purpose

    def _steps(self, doc: Doc) -> list[Doc]:
        spec = doc.get("spec")
        steps = spec.get("steps") if isinstance(spec, dict) else None
        return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []

    def _step(self, doc: Doc, kind: str | None = None) -> Doc | None:
        steps = [s for s in self._steps(doc) if kind is None or kind in s]
        return self.r.choice(steps) if steps else None

    def _containers(self, doc: Doc) -> list[Doc]:
        try:
            containers = doc["spec"]["template"]["spec"]["containers"]
        except (KeyError, TypeError):
            return []
        if not isinstance(containers, list):
            return []
        return [c for c in containers if isinstance(c, dict)]

    def two_actions(self, doc: Doc) -> str | None:
        step = self._step(doc)
        if step is None:
            return None
        extra = self.b.step("x")
        kind = next(k for k in STEP_KINDS if k in extra)
        if kind in step:
            return None
        step[kind] = extra[kind]
        return f"step {step.get('name')!r} also has {kind}"

    def no_action(self, doc: Doc) -> str | None:
        step = self._step(doc)
        if step is None:
            return None
        for kind in STEP_KINDS:
            step.pop(kind, None)
        return f"step {step.get('name')!r} has no action"

    def two_target_kinds(self, doc: Doc) -> str | None:
        step = self._step(doc, "waitFor")
        if step is None or not isinstance(step["waitFor"], list) or not step["waitFor"]:
            return None
        target = self.r.choice(step["waitFor"])
        if not isinstance(target, dict):
            return None
        extra = self.b.target(["/mnt"])
        kind = next(iter(extra))
        if kind in target:
            return None
        target[kind] = extra[kind]
        return f"a target of {step.get('name')!r} also has {kind}"

    def misplaced_target_option(self, doc: Doc) -> str | None:
        step = self._step(doc, "waitFor")
        if step is None or not isinstance(step["waitFor"], list) or not step["waitFor"]:
            return None
        target = self.r.choice(step["waitFor"])
        if not isinstance(target, dict):
            return None
        option, value = self.r.choice((("port", 80), ("expectStatus", 200), ("bodyContains", "UP")))
        target[option] = value
        return f"{option} on a {next(iter(target))} target"

    def duplicate_step_name(self, doc: Doc) -> str | None:
        steps = self._steps(doc)
        if not steps:
            return None
        clone = copy.deepcopy(self.r.choice(steps))
        doc["spec"]["steps"].insert(self.r.randint(0, len(doc["spec"]["steps"])), clone)
        return f"step name {clone.get('name')!r} twice"

    def step_named_like_container(self, doc: Doc) -> str | None:
        step, containers = self._step(doc), self._containers(doc)
        if step is None or not containers or "name" not in containers[0]:
            return None
        step["name"] = containers[0]["name"]
        return f"step named like container {step['name']!r}"

    def reserved_names(self, doc: Doc) -> str | None:
        where = self.r.choice(("step", "container", "volume", "download"))
        name = "initpipeline-" + self.b.label()
        if where == "step" and (step := self._step(doc)) is not None:
            step["name"] = name
        elif where == "container" and (containers := self._containers(doc)):
            containers[0]["name"] = name
        elif where == "volume" and isinstance(doc["spec"].get("template"), dict):
            pod = doc["spec"]["template"].get("spec")
            if not isinstance(pod, dict):
                return None
            pod["volumes"] = [{"name": name, "emptyDir": {}}]
        elif where == "download" and (step := self._step(doc, "download")) is not None:
            if not isinstance(step["download"], dict):
                return None
            step["download"]["volume"] = name
        else:
            return None
        return f"reserved name {name!r} for a {where}"

    def step_name_length(self, doc: Doc) -> str | None:
        step = self._step(doc)
        if step is None:
            return None
        size = self.r.choice((1, 62, 63, 64, 100))
        step["name"] = self.b.label(length=size).replace("-", "a")
        return f"step name of {size} characters"

    def volume_mounts_elsewhere(self, doc: Doc) -> str | None:
        steps = [s for s in self._steps(doc) if "waitFor" not in s]
        if not steps:
            return None
        step = self.r.choice(steps)
        step["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        return f"volumeMounts on non-wait step {step.get('name')!r}"

    def file_outside_mounts(self, doc: Doc) -> str | None:
        step = self._step(doc, "waitFor")
        if step is None or not isinstance(step["waitFor"], list):
            return None
        step["volumeMounts"] = [{"name": "certs", "mountPath": "/certs"}]
        path = self.r.choice(("/certsx/tls.crt", "/etc/passwd", "/cert", "/certs"))
        step["waitFor"].append({"file": path})
        return f"file target {path} with a mount at /certs"

    def bare_prepare_volume(self, doc: Doc) -> str | None:
        step = self._step(doc)
        if step is None:
            return None
        for kind in STEP_KINDS:
            step.pop(kind, None)
        step.pop("volumeMounts", None)
        step["prepareVolume"] = {"volume": "data"}
        return f"prepareVolume with only a volume in {step.get('name')!r}"

    def container_name_or_restart_policy(self, doc: Doc) -> str | None:
        kind = self.r.choice(("run", "sidecar"))
        step = self._step(doc, kind)
        if step is None or not isinstance(step[kind], dict):
            return None
        field_, value = self.r.choice(
            (("name", "custom"), ("restartPolicy", "Always"), ("restartPolicy", "Never"))
        )
        step[kind][field_] = value
        return f"{kind}.{field_}: {value}"

    def init_containers(self, doc: Doc) -> str | None:
        pod = doc["spec"].get("template", {}).get("spec") if isinstance(doc["spec"], dict) else None
        if not isinstance(pod, dict):
            return None
        pod["initContainers"] = self.r.choice(([], [{"name": "old", "image": "busybox"}]))
        return f"template.spec.initContainers: {len(pod['initContainers'])} items"

    def operator_labels(self, doc: Doc) -> str | None:
        template = doc["spec"].get("template") if isinstance(doc["spec"], dict) else None
        if not isinstance(template, dict):
            return None
        key = self.r.choice(
            (
                "initpipeline.io/pipeline",
                "initpipeline.io/other",
                "app.initpipeline.io/x",
                "bad key!",
            )
        )
        value = self.r.choice(("x", "", 5, "v" * 64))
        meta = template.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return None
        where = self.r.choice(("labels", "annotations"))
        meta.setdefault(where, {})
        if not isinstance(meta[where], dict):
            return None
        meta[where][key] = value
        return f"template {where} {key!r}: {value!r}"

    def restart_policy(self, doc: Doc) -> str | None:
        pod = doc["spec"].get("template", {}).get("spec") if isinstance(doc["spec"], dict) else None
        if not isinstance(pod, dict):
            return None
        value = self.r.choice(("Sometimes", "always", "", "Never"))
        pod["restartPolicy"] = value
        return f"template restartPolicy {value!r}"

    def pipeline_name(self, doc: Doc) -> str | None:
        base = doc["metadata"]["name"]
        choice = self.r.choice(("63", "64", "253", "254", "dots", "upper", "underscore"))
        if choice.isdigit():
            size = int(choice)
            name = (base + "-" + "n" * size)[:size]
        else:
            name = {"dots": base + ".with.dots", "upper": base.upper(), "underscore": base + "_x"}[
                choice
            ]
        doc["metadata"]["name"] = name
        return f"metadata.name {choice}"

    def too_many(self, doc: Doc) -> str | None:
        what = self.r.choice(("steps", "targets", "mounts", "containers"))
        if what == "steps":
            count = self.r.choice((32, 33))
            containers = {c.get("name") for c in self._containers(doc)}
            names = [f"s{n}" for n in range(count) if f"s{n}" not in containers]
            doc["spec"]["steps"] = [{"name": n, "run": {"image": "busybox"}} for n in names]
        elif what == "targets" and (step := self._step(doc, "waitFor")) is not None:
            count = self.r.choice((16, 17))
            step["waitFor"] = [{"dns": f"h{n}"} for n in range(count)]
        elif what == "mounts" and (step := self._step(doc, "waitFor")) is not None:
            count = self.r.choice((16, 17))
            step["volumeMounts"] = [{"name": f"v{n}", "mountPath": f"/m{n}"} for n in range(count)]
        elif what == "containers" and self._containers(doc):
            count = self.r.choice((64, 65))
            pod = doc["spec"]["template"]["spec"]
            pod["containers"] = [{"name": f"c{n}", "image": "busybox"} for n in range(count)]
        else:
            return None
        return f"{count} {what}"

    def sidecar_probe(self, doc: Doc) -> str | None:
        step = self._step(doc, "sidecar")
        if step is None or not isinstance(step["sidecar"], dict):
            return None
        value = self.r.choice(("1", "abc", 0, -5, [1], {"x": 1}, 1.5, True, None))
        probe = self.r.choice(({"tcpSocket": {"port": 80}, "periodSeconds": value}, value))
        step["sidecar"]["readinessProbe"] = probe
        return f"sidecar readinessProbe {probe!r}"


# ------------------------------------------------------------------ the corpus


def _unscheduled(doc: Doc) -> None:
    """Keep the Pods unscheduled (nothing runs) where the template still has a Pod spec."""
    spec = doc.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    if isinstance(pod, dict):
        pod["schedulerName"] = UNSCHEDULED


def generate_case(seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}:{index}")
    builder = Builder(rng)
    name = case_name(index)
    if rng.random() < VALID_SHARE:
        doc = builder.pipeline(name)
        _unscheduled(doc)
        return Case(index, "valid", (), doc)
    if rng.random() < 0.5:
        origin, example = rng.choice(example_pipelines())
        doc = copy.deepcopy(example)
        doc["metadata"] = {"name": name}
        origin = f"example {origin}"
    else:
        doc, origin = builder.pipeline(name), "generated"
    _unscheduled(doc)
    mutator = Mutator(rng, builder)
    mutations = tuple(mutator.mutate(doc) for _ in range(rng.choice((1, 1, 1, 2, 3))))
    _unscheduled(doc)  # again, should a mutation have dropped it
    # Keep Pods from piling up: many replicas only suspended.
    spec = doc.get("spec")
    if isinstance(spec, dict):
        replicas = spec.get("replicas")
        if isinstance(replicas, int | float) and not isinstance(replicas, bool) and replicas > 3:
            spec["suspend"] = True
    return Case(index, origin, mutations, doc)


def generate(seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT) -> list[Case]:
    return [generate_case(seed, index) for index in range(count)]


def dump(case: Case) -> str:
    """One case as YAML, after a comment line saying how it was made."""
    label = case.label.encode("unicode_escape").decode("ascii")
    return f"# {case.name}: {label}\n" + yaml.safe_dump(case.document, sort_keys=False)


def dump_all(cases: list[Case]) -> str:
    return "---\n".join(dump(case) for case in cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.generate", description=__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--case", type=int, help="print only this case")
    args = parser.parse_args(argv)
    if args.case is not None:
        sys.stdout.write(dump(generate_case(args.seed, args.case)))
    else:
        sys.stdout.write(dump_all(generate(args.seed, args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
