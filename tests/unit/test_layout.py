"""One results layout and one key chain: every path under results/<exp> comes
from ResultsLayout, and every reader derives recipe keys with plan.chain_keys."""

from __future__ import annotations

from pathlib import Path

from conftest import COUNTING_STEPS, counting_config

from repliflow.core.config import validate_config
from repliflow.core.plan import build_plan, chain_keys, segment_keys
from repliflow.engine.status import _Reader
from repliflow.store.layout import ResultsLayout


def _plan(tmp_path: Path, **overrides):
    (tmp_path / "steps.py").write_text(COUNTING_STEPS)
    config = validate_config(counting_config(replicates=7, **overrides))
    return build_plan(config, workdir=str(tmp_path))


def test_the_layout_names_every_path(tmp_path):
    layout = ResultsLayout.of("exp")
    assert layout.root == "results/exp"
    assert layout.store == "results/exp/store" and layout.blocks == "results/exp/blocks"
    assert layout.manifest("scale-ab", "000000-000005") == "results/exp/blocks/scale-ab/000000-000005.json"
    assert (
        layout.block_log("scale-ab", "000000-000005") == "results/exp/logs/blocks/scale-ab/000000-000005.log"
    )
    assert layout.block_attempt("s", "b") == "results/exp/logs/blocks/s/b.attempt.json"
    assert layout.rule_log("aggregate") == "results/exp/logs/aggregate.log"
    assert layout.provenance == "results/exp/provenance.json" and layout.repairs == "results/exp/repairs.tsv"
    assert layout.quarantine == "results/exp/quarantine" and layout.last_good == "results/exp/last-good"
    assert layout.runs == "results/exp/runs"
    assert ResultsLayout.of("exp", "/w/d/").store == "/w/d/results/exp/store"
    plan = _plan(tmp_path)
    assert plan.layout == layout and plan.results_dir == layout.root and plan.store_dir == layout.store
    block = plan.blocks(next(iter(plan.segments.values())))[0]
    assert plan.manifest_path(block) == layout.manifest(block.segment.label, block.label)


def test_every_reader_chains_keys_the_same_way(tmp_path):
    """The cache (the runner's keys), gc and audit (segment_keys) and status
    (its last-key look-up) agree for every condition and replicate."""
    plan = _plan(tmp_path, batch={"replicates_per_job": 3})
    by_segment = segment_keys(plan)
    reader = _Reader(plan, tmp_path)
    for condition in plan.conditions:
        chain = plan.chain(condition.name)
        assert chain[0].parent is None and chain[-1] is plan.final_segment(condition.name)
        for replicate, seed in enumerate(plan.seeds()):
            keys = plan.keys(condition.name, replicate)
            assert keys == chain_keys(condition.steps, seed)  # the runner's derivation
            assert keys == [key for segment in chain for key in by_segment[segment.id][replicate]]
            assert reader.last_key(chain[-1], replicate) == keys[-1]


def test_chain_keys_continue_from_an_upstream_key(tmp_path):
    plan = _plan(tmp_path)
    steps = plan.conditions[0].steps
    seed = plan.seeds()[0]
    whole = chain_keys(steps, seed)
    assert chain_keys(steps[1:], seed, whole[0]) == whole[1:]
