"""The renderConfig step's container: `initpipeline-render-config`, run in the operator's image.

Why here and not a busybox script like the other generated steps: substituting variables,
writing the file atomically and setting its mode needs no shell in Python, the code that runs
in the container is the code the unit tests call, and its messages come from `messages`. The
operator's image has Python and this package already; the module imports only the standard
library and `messages`, so it starts in a fraction of a second within the generated
containers' 64Mi.

Template syntax (no code is ever run, values are inserted as they are):

- `${NAME}`: the value of the variable NAME (letters, digits and `_`, not starting with a
  digit), declared in the step's `env`;
- `$$`: one literal `$`;
- any other `$` is kept as it is (`$host` in an nginx configuration stays `$host`);
- `${` not followed by a name and `}` is an error naming its line (write `$${` for a literal).

How the container gets its input (render.py writes it; this module is its one owner):

- the template in the environment variable TEMPLATE_ENV (an inline template as its value,
  with every `$` doubled since the kubelet expands `$(VAR)` in values; or a
  configMapKeyRef);
- each variable NAME in VARIABLE_PREFIX + NAME (a value, or a valueFrom that the kubelet
  resolves: the operator never reads a Secret), prefixed so that no variable changes PATH
  or PYTHON* for this process;
- the arguments: the destination file, its mode, a label for messages, and the declared
  variable names (a name the template uses but env lacks is told apart from a declared one
  whose optional source is missing).

It prints and writes to its termination message only names, the file's size and mode; never a
value or the rendered text.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from initpipeline import messages

TEMPLATE_ENV: Final = "INITPIPELINE_TEMPLATE"
VARIABLE_PREFIX: Final = "INITPIPELINE_VAR_"
COMMAND: Final = "initpipeline-render-config"
NAME_PATTERN: Final = "^[A-Za-z_][A-Za-z0-9_]*$"

_NAME = re.compile(NAME_PATTERN)
# `$$`, or `${` up to the next `}` on the same line (the closing brace may be missing).
_TOKEN = re.compile(r"\$\$|\$\{(?P<body>[^}\n]*)(?P<close>\})?")


class TemplateError(ValueError):
    """A template that cannot be read: the message names the line."""


@dataclass(frozen=True)
class Reference:
    name: str
    line: int


def parse(template: str) -> list[str | Reference]:
    """The template as literal text and variable references, in order."""
    parts: list[str | Reference] = []
    position = 0
    for token in _TOKEN.finditer(template):
        parts.append(template[position : token.start()])
        position = token.end()
        if token.group() == "$$":
            parts.append("$")
            continue
        line = template.count("\n", 0, token.start()) + 1
        body = token["body"]
        if token["close"] is None:
            raise TemplateError(
                f"line {line}: '${{' without a closing '}}' (write $$ for a literal $)"
            )
        if not _NAME.match(body):
            raise TemplateError(
                f"line {line}: '${{{body}}}' is not a variable reference: a name is letters, "
                "digits and _, not starting with a digit (write $$ for a literal $)"
            )
        parts.append(Reference(body, line))
    parts.append(template[position:])
    return [part for part in parts if part != ""]


def references(template: str) -> list[Reference]:
    """Each variable the template uses, at its first use."""
    first: dict[str, Reference] = {}
    for part in parse(template):
        if isinstance(part, Reference):
            first.setdefault(part.name, part)
    return list(first.values())


class MissingVariables(ValueError):
    """Variables the template uses without a value; `str()` is the step's message."""

    def __init__(self, missing: Sequence[Reference], declared: Sequence[str]) -> None:
        super().__init__(
            messages.missing_variables(
                [(ref.name, ref.line, ref.name in declared) for ref in missing]
            )
        )


def render(template: str, values: Mapping[str, str], declared: Sequence[str]) -> str:
    """The template with every `${NAME}` replaced by `values[NAME]`; raises TemplateError,
    or MissingVariables naming every variable without a value."""
    parts = parse(template)
    missing = [ref for ref in references(template) if ref.name not in values]
    if missing:
        raise MissingVariables(missing, declared)
    return "".join(values[part.name] if isinstance(part, Reference) else part for part in parts)


def write(path: str, text: str, mode: int) -> int:
    """Write `text` to `path` (parent directories created) with exactly `mode`: under a
    temporary name first, then renamed, so a reader never sees half a file. Returns its
    size in bytes. The text is encoded back to the bytes it came from (os.fsencode)."""
    data = os.fsencode(text)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".initpipeline-")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            os.fchmod(stream.fileno(), mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return len(data)


def run(
    destination: str,
    mode: int,
    label: str,
    declared: Sequence[str],
    environ: Mapping[str, str],
) -> str:
    """Render and write; returns the success message, raises TemplateError,
    MissingVariables or OSError."""
    template = environ.get(TEMPLATE_ENV)
    if template is None:
        raise TemplateError(f"{TEMPLATE_ENV} is not set")
    values = {
        name: environ[VARIABLE_PREFIX + name]
        for name in declared
        if VARIABLE_PREFIX + name in environ
    }
    text = render(template, values, declared)
    size = write(destination, text, mode)
    used = [ref.name for ref in references(template)]
    return messages.rendered(label, size, mode, used)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", required=True, help="the file to write")
    parser.add_argument("--mode", required=True, type=lambda text: int(text, 8), help="octal")
    parser.add_argument("--label", required=True, help="the file as messages name it")
    parser.add_argument("--termination-log", default=messages.TERMINATION_LOG)
    parser.add_argument("names", nargs="*", help="the variables env declares")
    args = parser.parse_args(argv)
    code = 1
    try:
        message = run(args.to, args.mode, args.label, args.names, os.environ)
        code = 0
    except TemplateError as error:
        message = messages.invalid_template(str(error))
    except MissingVariables as error:
        message = str(error)
    except OSError as error:
        message = messages.render_failed(args.label, error.strerror or str(error))
    print(message, file=sys.stderr if code else sys.stdout)
    try:
        with open(args.termination_log, "w", encoding="utf-8") as log:
            log.write(message + "\n")
    except OSError:
        pass  # outside a Pod: the message was printed
    return code


if __name__ == "__main__":
    sys.exit(main())
