"""A store shared between experiments and checkouts (config `store:` or
REPLIFLOW_STORE): computed once, audited, viewed, loaded and collected
without losing what another registered results folder uses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Experiment, counting_config, snakemake_command

from repliflow.cli import main
from repliflow.errors import RepliflowError
from repliflow.store.audit import audit
from repliflow.store.gc import collect, gc


def _provenance(experiment: Experiment) -> dict:
    return json.loads((experiment.results / "provenance.json").read_text())


def _store_files(store) -> set[str]:
    """Outputs and sidecars (in the <kk> folders; not the registry or quarantine)."""
    return {str(p.relative_to(store)) for p in store.glob("??/*")}


def _outputs(store) -> set[str]:
    return {p.name for p in store.glob("??/*") if not p.name.endswith(".meta.json")}


def _age(store, hours: float = 2.0) -> None:
    """Make every store file look older than gc's shared-store grace period."""
    then = time.time() - hours * 3600
    for path in store.glob("??/*"):
        os.utime(path, (then, then))


@pytest.fixture
def pair(tmp_path):
    """Two checkouts whose experiments share a datasource and the baseline,
    both using one shared store; A has run."""
    store = tmp_path / "shared-store"
    a = Experiment(tmp_path / "checkout-a", counting_config(experiment="exp_a", store=str(store)))
    b = Experiment(
        tmp_path / "checkout-b",
        counting_config(
            experiment="exp_b", store=str(store), treatments={"triple": {"scale": {"factor": 3.0}}}
        ),
    )
    a.snakemake()
    return a, b, store


def test_a_second_experiment_reuses_what_the_first_stored_and_computes_only_its_own(pair):
    a, b, store = pair
    assert not (a.results / "store").exists()  # outputs went to the shared store
    after_a = _store_files(store)
    assert len(_outputs(store)) == 3 * 5 + 2 * 5  # datasource + baseline scale, metrics + double's
    stamps = {name: (store / name).stat().st_mtime_ns for name in after_a}

    result = b.snakemake()

    # B's baseline (datasource, scale, metrics) is A's: only its treatment ran
    assert sorted({line.split(",")[:2][0] + "," + line.split(",")[1] for line in b.calls()}) == [
        "metrics,triple",
        "scale,triple",
    ]
    assert len(b.calls()) == 2 * 5
    assert {name: (store / name).stat().st_mtime_ns for name in after_a} == stamps  # nothing rewritten
    work = _provenance(b)["work"]
    assert work["baseline"] == {"computed": 0, "reused": 15, "repaired": 0}
    assert work["triple"]["computed"] == 10
    assert "reused" in result.stderr
    assert _provenance(b)["store"] == str(store)
    # the two metric tables agree on the shared baseline
    baseline_a = [
        r for r in (a.results / "metrics.csv").read_text().splitlines() if r.startswith("baseline,")
    ]
    baseline_b = [
        r for r in (b.results / "metrics.csv").read_text().splitlines() if r.startswith("baseline,")
    ]
    assert baseline_a == baseline_b and baseline_a

    for experiment in (a, b):
        found = audit(experiment.results, config=experiment.root / "config.yaml")
        assert found.ok, found.problems
        assert any("shared store" in note for note in found.notes)
    # the readable view links into the shared store
    link = next((b.results / "runs" / "triple").glob("rep-*/metrics.json"))
    assert os.readlink(link).startswith(str(store)) and json.loads(link.read_text())
    registry = sorted(p.name for p in (store / "registry").iterdir())
    assert len(registry) == 2


def test_the_environment_variable_names_the_store_and_the_jobs_get_it(tmp_path):
    store = tmp_path / "from-env"
    experiment = Experiment(tmp_path / "work", counting_config())
    experiment.snakemake(env={"REPLIFLOW_STORE": str(store)})
    assert not (experiment.results / "store").exists()
    assert len(_outputs(store)) == 25
    provenance = _provenance(experiment)
    assert provenance["store"] == str(store)
    assert audit(experiment.results, config=experiment.root / "config.yaml").ok
    # without the variable the run's config no longer names it: its own store, computed anew
    experiment.reset_calls()
    experiment.snakemake()
    assert len(experiment.calls()) == 25 and (experiment.results / "store").is_dir()


def test_a_damaged_shared_output_is_quarantined_in_the_store_and_recomputed(pair):
    a, _, store = pair
    victim = sorted(store.glob("*/*.json"))[0]
    if victim.name.endswith(".meta.json"):
        victim = victim.with_name(victim.name.removesuffix(".meta.json") + ".json")
    victim.write_text("[1, 2, 3]")
    a.snakemake()
    assert (store / "quarantine" / "log.tsv").is_file()
    assert not (a.results / "quarantine").exists()
    assert audit(a.results, config=a.root / "config.yaml").ok


def test_audit_of_a_moved_results_folder_follows_store_or_says_where_it_is(pair, tmp_path):
    a, _, store = pair
    moved = tmp_path / "received" / "exp_a"
    shutil.copytree(a.results, moved, symlinks=True)
    copy = tmp_path / "store-copy"
    shutil.copytree(store, copy)
    shutil.move(store, tmp_path / "store-gone")
    found = audit(moved, check_code=False)
    assert not found.ok and any("is not here" in note for note in found.notes)
    assert {p.kind for p in found.problems} == {"missing", "sidecar-missing"}
    assert audit(moved, check_code=False, store=copy).ok


def test_load_reads_outputs_from_the_shared_store(pair):
    pytest.importorskip("pandas")
    import repliflow

    a, _, _ = pair
    run = repliflow.load(a.results)
    assert run.output("double", 2, "metrics").keys() == {"mean", "spread"}


def test_gc_keeps_what_another_registered_results_folder_uses(pair, capsys):
    a, b, store = pair
    b.snakemake()
    _age(store)
    config_a = str(a.root / "config.yaml")
    # A alone: B's triple outputs are not A's, but B's folder names them
    listed = collect([config_a], a.root)
    assert listed.garbage == [] and listed.registered == [str(b.results.resolve())]

    # A changes its treatment: its old double outputs go, the shared baseline stays
    config = counting_config(experiment="exp_a", store=str(store))
    config["treatments"]["double"]["scale"]["factor"] = 5.0
    a.write_config(config)
    a.snakemake()
    _age(store)
    listed = collect([config_a], a.root)
    doomed = {g.key for g in listed.garbage if g.kind == "output"}
    assert len(doomed) == 2 * 5
    before = _provenance(b)["outputs"]
    assert not doomed & {o["key"] for o in before}
    assert main(["gc", "--delete", "-d", str(a.root), config_a]) == 0
    assert "shared store" in capsys.readouterr().out
    for experiment in (a, b):
        assert audit(experiment.results, config=experiment.root / "config.yaml").ok


def test_gc_leaves_young_outputs_of_a_shared_store(pair):
    a, _, store = pair
    config = counting_config(experiment="exp_a", store=str(store))
    config["treatments"]["double"]["scale"]["factor"] = 5.0
    a.write_config(config)
    a.snakemake()
    listed = collect([str(a.root / "config.yaml")], a.root)
    # the outputs of factor 2.0 are unneeded now but younger than an hour
    assert listed.young == 2 * 5
    assert not [g for g in listed.garbage if g.kind == "output"]


def test_gc_refuses_to_delete_while_a_registered_folder_is_gone_until_told_to_forget_it(pair, capsys):
    a, b, store = pair
    b.snakemake()
    before = _outputs(store)
    shutil.rmtree(b.results)
    _age(store)
    config_a = str(a.root / "config.yaml")
    listed = collect([config_a], a.root)
    assert len(listed.missing) == 1 and "exp_b" in listed.missing[0]
    assert listed.garbage  # B's triple outputs: unneeded by A, but B is only missing
    with pytest.raises(RepliflowError, match="forget-missing"):
        gc([config_a], a.root, delete=True)
    assert _outputs(store) == before  # nothing removed

    assert main(["gc", "--delete", "--forget-missing", "-d", str(a.root), config_a]) == 0
    out = capsys.readouterr().out
    assert "forgot the registration" in out
    assert len(_outputs(store)) == 3 * 5 + 2 * 5  # A's outputs only
    assert len(list((store / "registry").iterdir())) == 1
    assert audit(a.results, config=a.root / "config.yaml").ok


def test_gc_refuses_to_delete_when_a_registration_cannot_be_read(pair):
    a, _, store = pair
    (store / "registry" / "0000000000000000.json").write_text("{not json")
    listed = collect([str(a.root / "config.yaml")], a.root)
    assert listed.problems and "registration" in listed.problems[0]
    with pytest.raises(RepliflowError, match="cannot tell"):
        gc([str(a.root / "config.yaml")], a.root, delete=True)


def test_a_linked_folder_inside_the_shared_store_is_refused(pair, tmp_path):
    a, _, store = pair
    folder = next(p for p in store.iterdir() if len(p.name) == 2)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)
    folder.symlink_to(elsewhere)
    found = audit(a.results, check_code=False)
    assert not found.ok and "unsafe-path" in {p.kind for p in found.problems}
    assert collect([str(a.root / "config.yaml")], a.root).garbage == []  # links are not walked


def test_two_experiments_running_at_once_on_one_store_both_finish_and_agree(tmp_path):
    store = tmp_path / "shared-store"
    runs = [
        Experiment(tmp_path / name, counting_config(experiment=name, store=str(store)))
        for name in ("first", "second")
    ]
    processes = [
        subprocess.Popen(
            snakemake_command(run.root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for run in runs
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    # the same recipes: one set of keys, whichever run wrote each, and the tables agree
    assert len(_outputs(store)) == 25
    assert (runs[0].results / "metrics.csv").read_bytes() == (runs[1].results / "metrics.csv").read_bytes()
    for run in runs:
        assert audit(run.results, config=run.root / "config.yaml").ok
    assert not list(store.glob("??/.*.tmp"))  # no temp file left behind


def test_gc_waits_while_snakemake_runs_in_a_registered_folder_on_this_host(pair):
    a, b, store = pair
    b.snakemake()
    _age(store)
    shutil.rmtree(a.results / "blocks")  # A's own manifests gone: its config still names its keys
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "snakemake"], cwd=b.root
    )
    try:
        deadline = time.time() + 10
        while not (Path("/proc") / str(stand_in.pid) / "cmdline").read_bytes().endswith(b"snakemake\0"):
            assert time.time() < deadline
            time.sleep(0.05)
        with pytest.raises(RepliflowError, match=f"snakemake is running in {b.root.resolve()}"):
            gc([str(a.root / "config.yaml")], a.root, delete=True)
    finally:
        stand_in.kill()
        stand_in.wait()
    gc([str(a.root / "config.yaml")], a.root, delete=True)
    assert audit(b.results, config=b.root / "config.yaml").ok


def test_switching_to_a_shared_store_says_how_to_keep_the_outputs_already_made(tmp_path):
    experiment = Experiment(tmp_path / "work", counting_config())
    experiment.snakemake()
    store = tmp_path / "shared"
    experiment.write_config(counting_config(store=str(store)))
    experiment.reset_calls()
    notice = experiment.snakemake("-n").stderr
    assert f"copy them over first, times kept: cp -Rnp {experiment.results / 'store'}/. {store}/" in notice
    store.mkdir()
    subprocess.run(["cp", "-Rnp", f"{experiment.results / 'store'}/.", f"{store}/"], check=True)
    result = experiment.snakemake()
    assert experiment.calls() == []  # every output found in the shared store: nothing computed again
    assert "repair" not in result.stderr.lower()
    assert _provenance(experiment)["store"] == str(store)
    assert audit(experiment.results, config=experiment.root / "config.yaml").ok
