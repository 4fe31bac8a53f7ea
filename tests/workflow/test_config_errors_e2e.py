"""Bad inputs through real Snakemake: one readable message naming the culprit, never a
traceback, and a step that raises loses none of the outputs already made.

The unit tests of the same messages (``validate_config`` + ``build_plan``, the calls
workflow/rules/common.smk makes) are in tests/unit/test_config.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COUNTING_STEPS, COUNTING_YAML, CUSTOM_VERIFIER, REPO, Experiment, counting_config, write


def test_custom_verifier_file_function_runs_end_to_end(tmp_path):
    config = counting_config(
        replicates=4,
        hypotheses=[
            {
                "name": "custom",
                "metric": "mean",
                "verifier": "my_tests.py:always_significant",
                "params": {"tag": "hello"},
            }
        ],
    )
    exp = Experiment(tmp_path, config)
    (tmp_path / "my_tests.py").write_text(CUSTOM_VERIFIER)
    exp.snakemake()
    hypotheses = json.loads((exp.results / "hypotheses.json").read_text())["hypotheses"]
    assert [(h["name"], h["metric"], h["verifier"]) for h in hypotheses] == [
        ("custom", "mean", "my_tests.py:always_significant")
    ]
    result = hypotheses[0]["results"]["double"]
    assert result["p_value"] == 0.001 and result["significant"] is True
    assert result["statistic"] == 8.0 and result["tag"] == "hello"
    assert hypotheses[0]["ranking"] == ["double"]


# --- a bad config stops the parse ---------------------------------------------------------


def flat(text: str) -> str:
    """repliflow wraps parse errors at 100 columns; compare with whitespace collapsed."""
    return " ".join(text.split())


def failed_parse(tmp_path: Path, **overrides) -> str:
    exp = Experiment(tmp_path / "exp", counting_config(**overrides))
    result = exp.snakemake(check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output, output
    assert not (exp.root / "results").exists()
    stderr = flat(result.stderr)
    assert f"config file {exp.root / 'config.yaml'}" in stderr, result.stderr
    return stderr


def test_snakemake_unknown_function(tmp_path):
    stderr = failed_parse(tmp_path, pipeline=[{"function": "scael"}, {"function": "metrics"}])
    assert "key 'pipeline.0.function'" in stderr
    assert "'scael'" in stderr and str(tmp_path / "exp" / "steps.py") in stderr


def test_snakemake_missing_code_file(tmp_path):
    stderr = failed_parse(tmp_path, code="stpes.py")
    assert "key 'code'" in stderr and "'stpes.py'" in stderr


def test_snakemake_unknown_treatment_param(tmp_path):
    stderr = failed_parse(tmp_path, treatments={"double": {"scale": {"factr": 2.0}}})
    assert "key 'treatments.double.scale'" in stderr
    assert "condition 'double'" in stderr and "step 'scale'" in stderr and "'factr'" in stderr


@pytest.mark.parametrize("value", [0, "5"], ids=repr)
def test_snakemake_bad_replicates(tmp_path, value):
    stderr = failed_parse(tmp_path, replicates=value)
    assert "key 'replicates'" in stderr and repr(value) in stderr
    assert "Failed validating" not in stderr


def test_snakemake_experiment_name_escaping_results(tmp_path):
    stderr = failed_parse(tmp_path, experiment="../evil")
    assert "key 'experiment'" in stderr and "'../evil'" in stderr
    assert "Failed validating" not in stderr
    assert not (tmp_path / "evil").exists()


# Fix: src/repliflow/workflow_support.py fail. textwrap.wrap(width=100) breaks words
# longer than 100 characters (break_long_words=True by default), so a long config or code
# path is printed split over two lines; pass break_long_words=False.
def test_snakemake_message_keeps_a_long_path_whole(tmp_path):
    deep = tmp_path / ("a_rather_long_directory_name_" * 4)
    exp = Experiment(deep, counting_config(pipeline=[{"function": "scael"}, {"function": "metrics"}]))
    result = exp.snakemake(check=False)
    assert result.returncode != 0
    assert str(deep / "config.yaml") in result.stderr.replace("\n", " ")


# --- a step that raises ------------------------------------------------------------------


def stored(results: Path) -> set[tuple[str, str, int]]:
    found = set()
    for path in (results / "store").glob("*/*.meta.json"):
        sidecar = json.loads(path.read_text())
        found.add((sidecar["step"], sidecar["condition"], sidecar["replicate"]))
    return found


def test_step_that_raises_names_it_keeps_the_rest_and_reruns_only_its_chain(tmp_path):
    # Blocks of 3: the failing replicate 2 shares its job with replicates 0 and 1.
    exp = Experiment(tmp_path, counting_config(batch={"replicates_per_job": 3}))
    result = exp.snakemake("--keep-going", check=False, env={"REPLIFLOW_TEST_FAIL": "double:2"})
    assert result.returncode != 0
    stderr = result.stderr
    assert (
        "repliflow: step 'scale' failed for condition 'double', replicate 2: "
        "RuntimeError: injected failure" in stderr
    ), stderr[-3000:]
    assert "Traceback" not in result.stdout + stderr  # the traceback goes to the job's log
    # onerror: what to do next (it also releases Snakemake's scheduler timers)
    assert "outputs already made are kept under" in flat(result.stdout + stderr)

    logs = list((exp.results / "logs" / "blocks").glob("*/*.log"))
    failed_logs = [log for log in logs if "injected failure" in log.read_text()]
    assert len(failed_logs) == 1
    log = failed_logs[0].read_text()
    assert "Traceback (most recent call last)" in log
    assert 'raise RuntimeError("injected failure")' in log
    assert str(failed_logs[0].relative_to(tmp_path)) in flat(stderr)  # the message points at it

    everything = {
        (step, condition, r)
        for step, condition in [
            ("scale", "baseline"),
            ("metrics", "baseline"),
            ("scale", "double"),
            ("metrics", "double"),
        ]
        for r in range(5)
    } | {("datasource", "baseline", r) for r in range(5)}
    failed_chain = {("scale", "double", 2), ("metrics", "double", 2)}
    assert stored(exp.results) == everything - failed_chain
    assert not (exp.results / "metrics.csv").exists()

    exp.reset_calls()
    exp.snakemake()
    assert sorted(exp.calls()) == ["metrics,double,2", "scale,double,2"]
    assert stored(exp.results) == everything
    assert (exp.results / "hypotheses.json").exists()


# --- bounds and hygiene (issue 12, item 8) -----------------------------------------------------
# Config values must have a JSON form (a recipe key hashes canonical JSON), config and code files
# must be readable text, a YAML key given twice is an error rather than silently last-wins, and
# `replicates` is bounded. Each ends with one message naming the key and file, never a traceback.


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("n: .nan", "nan is not a finite number"),
        ("n: 2024-01-02", "YAML read 2024-01-02 as a date"),
        ("n: !!python/tuple [1, 2]", "!!python/tuple"),  # Snakemake's loader made a tuple of it
    ],
    ids=["nan", "date", "python-tuple"],
)
def test_snakemake_value_without_a_json_form(tmp_path, written, words):
    exp = Experiment(tmp_path, counting_config())
    write(tmp_path / "config.yaml", COUNTING_YAML.replace("n: 5", written))
    result = exp.snakemake("-n", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    stderr = flat(result.stderr)
    assert f"config file {tmp_path / 'config.yaml'}, key 'datasource.params.n'" in stderr, stderr
    assert words in stderr


def test_snakemake_non_utf8_code_file(tmp_path):
    exp = Experiment(tmp_path, counting_config())
    (tmp_path / "steps.py").write_bytes(
        COUNTING_STEPS.replace("import os", "import os  # caf\xe9").encode("latin-1")
    )
    result = exp.snakemake("-n", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    stderr = flat(result.stderr)
    assert "key 'code'" in stderr and f"{tmp_path / 'steps.py'} is not UTF-8 text" in stderr, stderr


@pytest.mark.skipif(
    "check_config_files" not in (REPO / "workflow" / "rules" / "common.smk").read_text(),
    reason="runs once common.smk calls repliflow.core.config.check_config_files(workflow.configfiles)",
)
def test_snakemake_duplicate_key(tmp_path):
    exp = Experiment(tmp_path, counting_config())
    write(
        tmp_path / "config.yaml", COUNTING_YAML.replace("  params: {n: 5}", "  params:\n    n: 5\n    n: 6")
    )
    result = exp.snakemake("-n", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    stderr = flat(result.stderr)
    assert f"config file {tmp_path / 'config.yaml'}, key 'datasource.params.n'" in stderr, stderr
    assert "given twice in one mapping (lines 8 and 9)" in stderr
