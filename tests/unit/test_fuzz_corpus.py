"""The fuzz corpus is reproducible: the same seed gives the same bytes, in any process."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from tests.fuzz import generate

pytestmark = pytest.mark.unit


def corpus_digest(seed: int, count: int) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.generate", "--seed", str(seed), "--count", str(count)],
        capture_output=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return hashlib.sha256(out).hexdigest()


def test_the_same_seed_gives_a_byte_identical_corpus_in_two_processes() -> None:
    assert corpus_digest(7, 300) == corpus_digest(7, 300)
    assert corpus_digest(7, 300) != corpus_digest(8, 300)


def test_one_case_is_the_same_alone_and_in_the_corpus() -> None:
    corpus = generate.generate(3, 50)
    assert generate.dump(generate.generate_case(3, 41)) == generate.dump(corpus[41])
    assert [c.name for c in corpus] == [generate.case_name(i) for i in range(50)]


def test_the_corpus_mixes_valid_documents_and_mutants_of_the_examples() -> None:
    corpus = generate.generate(1, 400)
    origins = [c.origin for c in corpus]
    assert origins.count("valid") > 60
    assert sum(o.startswith("example ") for o in origins) > 60
    assert all(c.mutations for c in corpus if c.origin != "valid")
