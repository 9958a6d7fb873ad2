"""The API server's `apiserver_request_total` counter: parsing and deltas (pure)."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping

METRIC = "apiserver_request_total"
# (verb, resource, subresource): the labels a request is counted by here (code, scope,
# group, version, component and dry_run are summed over).
Key = tuple[str, str, str]

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def parse_labels(text: str) -> dict[str, str]:
    def unescape(value: str) -> str:
        return value.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", "\n")

    return {m["key"]: unescape(m["value"]) for m in _LABEL.finditer(text)}


def request_counts(text: str) -> collections.Counter[Key]:
    """Sum of `apiserver_request_total` by (verb, resource, subresource) in a /metrics text."""
    counts: collections.Counter[Key] = collections.Counter()
    for line in text.splitlines():
        if not line.startswith(METRIC):
            continue
        match = _SAMPLE.match(line)
        if not match or match["name"] != METRIC:
            continue
        labels = parse_labels(match["labels"] or "")
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] += int(float(match["value"]))
    return counts


def delta(
    before: Mapping[Key, int],
    after: Mapping[Key, int],
    minus: Iterable[Mapping[Key, int]] = (),
) -> dict[Key, int]:
    """after - before - each of `minus` (requests known to be someone else's), keeping only
    positive entries. A counter that went down (API server restart) counts from zero."""
    result: dict[Key, int] = {}
    for key in set(before) | set(after):
        grown = after.get(key, 0) - before.get(key, 0)
        result[key] = after.get(key, 0) if grown < 0 else grown
    for other in minus:
        for key, value in other.items():
            result[key] = result.get(key, 0) - value
    return {key: value for key, value in sorted(result.items()) if value > 0}


def only(counts: Mapping[Key, int], resources: Iterable[str]) -> dict[Key, int]:
    """The entries for these resources."""
    wanted = set(resources)
    return {key: value for key, value in counts.items() if key[1] in wanted}
