"""The registry is the one catalogue: every seed paper and baseline, with honest status and provenance."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from rlspec.reference import catalogue, registry

SHARED = Path(__file__).resolve().parents[2] / "shared" / "papers"
BASELINES = {"ppo", "grpo", "dr_grpo", "dapo", "gspo", "gspo_token", "cispo", "rloo", "reinforce_pp", "gae",
             "kl_k1", "kl_k2", "kl_k3", "entropy"}
PROBES = {"sapo", "dvao", "spo", "promed", "hdpo"}


def test_every_seed_paper_has_an_entry():
    """52 seed papers, each with an entry (planned until built) and a distinct arXiv id."""
    assert len(catalogue.SEED_PAPERS) == 52
    arxiv = {registry.get(row[0]).paper.arxiv for row in catalogue.SEED_PAPERS}
    assert len(arxiv) == 52


@pytest.mark.skipif(not SHARED.exists(), reason="shared/papers notes not present beside the checkout")
def test_catalogue_ids_match_the_notes():
    """Every arXiv id of the catalogue occurs in the paper notes, and every note section's id is catalogued."""
    text = "".join(p.read_text() for p in SHARED.glob("papers_*.md"))
    ids = {row[3] for row in catalogue.SEED_PAPERS}
    for i in ids:
        assert i in text, i
    summary_ids = set()
    for p in SHARED.glob("papers_*.md"):
        table = p.read_text().split("## Summary table")[-1]
        summary_ids |= set(re.findall(r"\|\s*(\d{4}\.\d{5})", table))
    assert summary_ids <= ids


def test_baselines_and_probes_implemented():
    """Issue #2: the baselines and the five design probes are implemented."""
    implemented = set(registry.names(status="implemented"))
    assert BASELINES <= implemented, BASELINES - implemented
    assert PROBES <= implemented, PROBES - implemented


@pytest.mark.parametrize("name", registry.names())
def test_entry_is_well_formed(name):
    """Kinds, statuses and provenance use the documented vocabularies; JSON export works."""
    spec = registry.get(name)
    assert spec.kind in registry.KINDS
    assert spec.status in registry.STATUSES
    assert set(spec.provenance.values()) <= set(registry.SOURCES)
    json.dumps(spec.to_dict())
    if spec.status == "planned":
        with pytest.raises(registry.PlannedAlgorithmError):
            spec()
        return
    assert spec.equations, f"{name}: an implemented entry cites the equations it implements"
    for eq in spec.equations:
        assert eq.where, f"{name}/{eq.label}: equation without section/equation reference"
    cfg = spec.config()
    if cfg is not None:
        assert dataclasses.is_dataclass(cfg)
        assert cfg.__dataclass_params__.frozen
    assert spec.outputs, f"{name}: outputs must be named for reports and vectors"
    from rlspec.conformance.inputs import DEFAULT_KINDS

    if spec.kind not in DEFAULT_KINDS + ("entropy",):
        assert spec.make_inputs is not None, f"{name}: needs make_inputs (its kind has no canonical batch)"


def test_docs_are_current(tmp_path):
    """docs/catalogue.md and docs/algorithms/*.md are the output of `rlspec docs` (rerun it after changing the registry)."""
    from rlspec.conformance.cli import main

    assert main(["docs", "--out", str(tmp_path)]) == 0
    docs = Path(__file__).resolve().parents[1] / "docs"
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*.md")}
    committed = {p.relative_to(docs): p.read_text() for p in [docs / "catalogue.md", *(docs / "algorithms").glob("*.md")]
                 if p.exists()}
    assert fresh == committed, "docs are stale: run `rlspec docs`"


@pytest.mark.parametrize("name", registry.names(status="implemented"))
def test_listed_properties_exist(name):
    """Every property an entry lists ('path::test_name: claim') names a test function that exists."""
    root = Path(__file__).resolve().parents[1]
    for prop in registry.get(name).properties:
        test_id = prop.partition(": ")[0]
        if "::" not in test_id:
            continue
        path, _, func = test_id.partition("::")
        func = re.match(r"[A-Za-z_]\w*", func.split("::")[-1]).group(0)
        source = (root / path).read_text() if (root / path).exists() else ""
        assert f"def {func}(" in source, f"{name}: lists {test_id}, which does not exist"


def test_vector_schema_knows_every_kind():
    """The golden-vector schema's kind list is the registry's (one call signature per kind)."""
    import json

    from rlspec.conformance import vectors

    assert json.loads(vectors.SCHEMA_PATH.read_text())["properties"]["kind"]["enum"] == list(registry.KINDS)


def test_critic_losses_have_their_own_kind():
    """Every entry whose gradient output is dvalues is a value_loss, and every value_loss returns (loss, dvalues)."""
    for s in registry.specs(status="implemented"):
        assert ("dvalues" in s.outputs) == (s.kind == "value_loss"), s.name
