from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import LearningError
from orchestrator.learning.data import TOPICS, load_org_data, public_corpus, read_topic_articles
from orchestrator.merkle import MerkleTree, sample_leaf, verify


def test_splits_are_deterministic_and_disjoint() -> None:
    a = load_org_data("tech", max_train=20, max_val=5)
    b = load_org_data("tech", max_train=20, max_val=5)
    assert a == b
    assert not set(a.train) & set(a.val)
    assert not set(a.train) & set(a.heldout)
    assert not set(a.val) & set(a.heldout)
    assert len(a.train) == 20 and len(a.val) == 5 and len(a.heldout) == 5


def test_another_seed_gives_another_split() -> None:
    assert load_org_data("tech", max_train=20, seed=0).train != load_org_data("tech", max_train=20, seed=1).train


def test_every_topic_loads_including_sport_stored_as_sports() -> None:
    for topic in TOPICS:
        data = load_org_data(topic, max_train=8)
        assert data.name == topic and len(data.train) == 8
    assert any("match" in t.lower() or "cup" in t.lower() for t in load_org_data("sport").train)


def test_canaries_are_unique_per_org_and_inside_train() -> None:
    sport, tech = load_org_data("sport", max_train=10), load_org_data("tech", max_train=10)
    assert sport.canaries and all(c in sport.train for c in sport.canaries)
    assert all("sport" in c for c in sport.canaries)
    assert not set(sport.canaries) & set(tech.canaries)


def test_public_slice_never_belongs_to_an_org() -> None:
    public = set(public_corpus())
    for topic in TOPICS:
        data = load_org_data(topic)
        assert not public & (set(data.train) | set(data.val) | set(data.heldout))
    assert len(public & set(read_topic_articles("sport"))) == len(public) // len(TOPICS)


def test_commitment_is_the_merkle_root_of_train_samples_and_proves_each() -> None:
    data = load_org_data("politics", max_train=9)
    tree = MerkleTree.build([sample_leaf(t) for t in data.train])
    assert data.commitment() == tree.root
    leaf = sample_leaf(data.train[4])
    assert verify(tree.proof(leaf), data.commitment(), leaf)


def test_folder_source_reads_txt_and_jsonl(tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"{i}.txt").write_text(f"Plain text document number {i} with enough characters to count.")
    (tmp_path / "more.jsonl").write_text(
        "\n".join(json.dumps({"text": f"JSON lines record {i} that is long enough to be a sample."}) for i in range(4))
    )
    data = load_org_data("clinic", source=tmp_path, num_canaries=1)
    everything = set(data.train) | set(data.val) | set(data.heldout)
    assert len(everything) == 9  # 8 texts + 1 canary
    assert any(t.startswith("JSON lines record") for t in everything)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda d: None, "has no data"),
        (lambda d: (d / "a.txt").write_text("too short"), "have at least"),
        (lambda d: (d / "a.jsonl").write_text('{"body": "x"}'), 'no string field "text"'),
    ],
)
def test_bad_org_data_is_a_clear_error(tmp_path: Path, setup, match: str) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    with pytest.raises(LearningError, match=match):
        load_org_data("clinic", source=tmp_path)


def test_unknown_org_without_source_names_the_org() -> None:
    with pytest.raises(LearningError, match="'weather' is not a BBC topic"):
        load_org_data("weather")
