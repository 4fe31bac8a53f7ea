"""Bad inputs end with one readable message naming the culprit, never a traceback.

DESIGN.md: "A bad config, a missing function, a step that raises, or an output that
cannot be stored ends with a message that names the file, key, condition, replicate
and step concerned, and loses none of the outputs already made."

These are unit tests of ``validate_config`` + ``build_plan`` (the same two calls
workflow/rules/common.smk makes); the handful that go through real Snakemake are in
tests/workflow/test_config_errors_e2e.py.
"""

from __future__ import annotations

import datetime as _datetime
import json
import math as _math
import textwrap
from pathlib import Path

import pytest
from conftest import COUNTING_STEPS, COUNTING_YAML, CUSTOM_VERIFIER, counting_config, write

from repliflow.core.config import check_config_files, load_config_file, validate_config
from repliflow.core.plan import build_plan, load_plan
from repliflow.errors import ConfigError

CFG = "cfg.yaml"

# Step functions with the signatures the parameter checks care about.
EXTRA_STEPS = COUNTING_STEPS + textwrap.dedent(
    """

    def loose(data, ctx, **kwargs):
        return data


    def needs(data, ctx, *, k):
        return data
    """
)


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "steps.py").write_text(EXTRA_STEPS)
    return tmp_path


def config_error(workdir: Path, **overrides) -> str:
    """The message a config with ``overrides`` fails with, as common.smk shows it."""
    config = counting_config(**overrides)
    with pytest.raises(ConfigError) as info:
        build_plan(validate_config(config, file=CFG), workdir=str(workdir))
    exc = info.value
    if exc.file is None:  # common.smk fills in the config file for planner errors
        exc.file = CFG
    message = str(exc)
    assert_readable(message)
    return message


def assert_readable(message: str) -> None:
    """One paragraph for a user: no traceback, no schema dump."""
    assert message.startswith("repliflow: bad experiment config (")
    assert f"config file {CFG}" in message
    assert "Traceback" not in message
    assert "Failed validating" not in message and "On instance" not in message, message
    assert len(message) < 800, message


def plans(workdir: Path, **overrides):
    return build_plan(validate_config(counting_config(**overrides), file=CFG), workdir=str(workdir))


# --- code and functions -------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"datasource": {"function": "nope"}}, "datasource.function"),
        ({"pipeline": [{"function": "nope"}, {"function": "metrics"}]}, "pipeline.0.function"),
        ({"pipeline": [{"function": "scale"}, {"function": "nope", "name": "m"}]}, "pipeline.1.function"),
    ],
)
def test_unknown_function_names_function_code_file_and_key(workdir, overrides, key):
    message = config_error(workdir, **overrides)
    assert f"key '{key}'" in message
    assert "'nope'" in message
    assert str(workdir / "steps.py") in message
    assert "functions there: _record, loose, metrics, needs, scale, source" in message


def test_missing_code_file(workdir):
    message = config_error(workdir, code="missing_steps.py")
    assert "key 'code'" in message
    assert "'missing_steps.py'" in message
    assert str(workdir / "missing_steps.py") in message


def test_unknown_code_module(workdir):
    message = config_error(workdir, code="no_such_pkg.steps")
    assert "key 'code'" in message
    assert "'no_such_pkg.steps'" in message


def test_code_file_with_a_syntax_error(workdir):
    (workdir / "broken.py").write_text("def source(ctx):\n    return [\n")
    message = config_error(workdir, code="broken.py")
    assert "key 'code'" in message
    assert "broken.py" in message and "syntax error" in message


# --- replicates ------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -3, "5", 2.5, True], ids=repr)
def test_replicates_must_be_a_positive_int(workdir, value):
    message = config_error(workdir, replicates=value)
    assert "key 'replicates'" in message
    assert repr(value) in message
    assert "positive integer" in message


@pytest.mark.parametrize("value", [0, -3, "5", 2.5, True], ids=repr)
def test_planner_refuses_bad_replicates_even_without_the_schema(workdir, value):
    with pytest.raises(ConfigError) as info:
        build_plan(counting_config(replicates=value), workdir=str(workdir))
    assert "key 'replicates'" in str(info.value) and repr(value) in str(info.value)


# --- treatments and parameters ------------------------------------------------------


def test_treatment_naming_an_unknown_step(workdir):
    message = config_error(workdir, treatments={"fast": {"sclae": {"factor": 2.0}}})
    assert "key 'treatments.fast.sclae'" in message
    assert "treatment 'fast'" in message and "'sclae'" in message
    assert "datasource, scale, metrics" in message


@pytest.mark.parametrize(
    ("treatment", "key", "step"),
    [
        ({"scale": {"factr": 2.0}}, "treatments.fast.scale", "scale"),
        ({"datasource": {"size": 9}}, "treatments.fast.datasource", "datasource"),
    ],
)
def test_treatment_param_the_function_does_not_accept(workdir, treatment, key, step):
    message = config_error(workdir, treatments={"fast": treatment})
    assert f"key '{key}'" in message
    assert "condition 'fast'" in message and f"step '{step}'" in message
    bad = next(iter(next(iter(treatment.values()))))
    assert f"parameter '{bad}'" in message
    assert str(workdir / "steps.py") in message


def test_step_with_kwargs_accepts_any_param(workdir):
    pipeline = [{"function": "loose", "params": {"anything": 1}}, {"function": "metrics"}]
    plan = plans(workdir, pipeline=pipeline, treatments={"t": {"loose": {"whatever": [1, 2]}}})
    assert plan.condition("t").steps[1].params == {"anything": 1, "whatever": [1, 2]}


def test_baseline_param_the_function_does_not_accept(workdir):
    pipeline = [{"function": "scale", "params": {"factr": 2.0}}, {"function": "metrics"}]
    message = config_error(workdir, pipeline=pipeline, treatments={})
    assert "key 'pipeline.0.params'" in message
    assert "condition 'baseline'" in message and "step 'scale'" in message
    assert "parameter 'factr'" in message and "accepts: factor" in message


def test_baseline_datasource_param_the_function_does_not_accept(workdir):
    message = config_error(workdir, datasource={"function": "source", "params": {"size": 3}})
    assert "key 'datasource.params'" in message
    assert "step 'datasource'" in message and "parameter 'size'" in message


def test_required_keyword_only_param_missing(workdir):
    pipeline = [{"function": "needs", "name": "prep"}, {"function": "metrics"}]
    message = config_error(workdir, pipeline=pipeline, treatments={})
    assert "key 'pipeline.0.params'" in message
    assert "step 'prep'" in message and "needs()" in message
    assert "parameter(s) k " in message and "no default" in message
    # given, it plans
    pipeline[0]["params"] = {"k": 1}
    assert plans(workdir, pipeline=pipeline, treatments={}).condition("baseline").steps[1].params == {"k": 1}


# --- verifiers --------------------------------------------------------------------------


def hypothesis(verifier: str) -> list[dict]:
    return [
        {"name": "ok", "metric": "mean", "verifier": "welch_t"},
        {"name": "custom", "metric": "mean", "verifier": verifier},
    ]


def test_unknown_verifier_name(workdir):
    message = config_error(workdir, hypotheses=hypothesis("welch"))
    assert "key 'hypotheses.1.verifier'" in message
    assert "'welch'" in message and "welch_t, student_t, mann_whitney" in message


def test_custom_verifier_file_missing(workdir):
    message = config_error(workdir, hypotheses=hypothesis("my_tests.py:always_significant"))
    assert "key 'hypotheses.1.verifier'" in message
    assert "my_tests.py" in message
    assert "key 'code'" not in message


def test_custom_verifier_function_missing(workdir):
    (workdir / "my_tests.py").write_text(CUSTOM_VERIFIER)
    message = config_error(workdir, hypotheses=hypothesis("my_tests.py:sometimes_significant"))
    assert "key 'hypotheses.1.verifier'" in message
    assert "'sometimes_significant'" in message
    assert str(workdir / "my_tests.py") in message and "always_significant" in message


# A built-in verifier's params are checked at planning, before any replicate runs.


def one_hypothesis(verifier: str, params) -> list[dict]:
    return [{"name": "h", "metric": "mean", "verifier": verifier, "params": params}]


@pytest.mark.parametrize(
    ("verifier", "params", "key", "words"),
    [
        ("welch_t", {"n_resamples": 99}, "hypotheses.0.params", ["takes no parameter 'n_resamples'"]),
        ("paired_t", {"alpah": 0.1}, "hypotheses.0.params", ["'alpah'", "it takes alpha, alternative"]),
        ("permutation", {"seed": -1}, "hypotheses.0.params.seed", ["non-negative integer", "-1"]),
        ("mann_whitney", {"method": "exakt"}, "hypotheses.0.params.method", ["auto, asymptotic, exact"]),
        ("wilcoxon", {"zero_method": "zero"}, "hypotheses.0.params.zero_method", ["wilcox, pratt, zsplit"]),
    ],
)
def test_builtin_verifier_params_are_checked_at_planning(workdir, verifier, params, key, words):
    message = config_error(workdir, hypotheses=one_hypothesis(verifier, params))
    assert f"key '{key}'" in message and f"verifier '{verifier}'" in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("params", "key", "words"),
    [
        ({"alpha": 1.5}, "hypotheses.0.params.alpha", ["strictly between 0 and 1", "1.5"]),
        ({"alpha": 0}, "hypotheses.0.params.alpha", ["strictly between 0 and 1"]),
        ({"alpha": True}, "hypotheses.0.params.alpha", ["strictly between 0 and 1"]),
        ({"alternative": "up"}, "hypotheses.0.params.alternative", ["two-sided, greater, less", "'up'"]),
        ({"n_resamples": 0}, "hypotheses.0.params.n_resamples", ["positive integer"]),
        ({"n_resamples": "many"}, "hypotheses.0.params.n_resamples", ["positive integer"]),
        ({"seed": 1.5}, "hypotheses.0.params.seed", ["non-negative integer"]),
        ("fast", "hypotheses.0.params", ["mapping"]),
    ],
)
def test_builtin_verifier_param_values_are_checked_by_the_planner(workdir, params, key, words):
    """The schema rejects most of these first; the planner checks them too
    (build_plan is also called on configs that skipped the schema)."""
    config = counting_config(hypotheses=one_hypothesis("permutation", params))
    with pytest.raises(ConfigError) as info:
        build_plan(config, workdir=str(workdir))
    assert info.value.key == key
    for word in words:
        assert word in info.value.message


def test_custom_verifier_params_are_its_own(workdir):
    (workdir / "my_tests.py").write_text(CUSTOM_VERIFIER)
    plan = plans(workdir, hypotheses=one_hypothesis("my_tests.py:always_significant", {"anything": -1}))
    assert plan.hypotheses[0]["params"] == {"anything": -1}


def test_good_builtin_params_plan(workdir):
    params = {"alpha": 0.01, "alternative": "less", "n_resamples": 999, "seed": 3}
    assert plans(workdir, hypotheses=one_hypothesis("bootstrap", params)).hypotheses[0]["params"] == params


def test_the_table_of_builtin_params_is_their_signatures():
    """Planning reads the params from a table (no scipy import); it must say what
    the functions take, with their defaults and every listed choice usable."""
    import inspect

    from repliflow.stats import BUILTIN_PARAMS, FROM_HYPOTHESIS, PARAM_CHOICES
    from repliflow.stats.builtin import BUILTINS
    from repliflow.stats.registry import check_params

    assert set(BUILTIN_PARAMS) == set(BUILTINS)
    for name, function in BUILTINS.items():
        parameters = inspect.signature(function).parameters.values()
        keywords = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
        assert BUILTIN_PARAMS[name] == tuple(p.name for p in keywords), name
        # sesoi is the hypothesis' key, passed by the aggregate: never one of params
        params = {p.name: p.default for p in keywords if p.name not in FROM_HYPOTHESIS}
        check_params(name, params, key="defaults")
        for p in keywords:
            for choice in PARAM_CHOICES.get(p.name, ()):
                bounds = {"sesoi": {"value": 1.0}} if "sesoi" in BUILTIN_PARAMS[name] else {}
                result = function([0.1, 0.5, 0.9, 1.3], [0.4, 1.1, 1.5, 2.2], **{p.name: choice}, **bounds)
                assert 0 <= result["p_value"] <= 1, (name, p.name, choice)


def test_planning_does_not_import_scipy(workdir):
    import subprocess
    import sys

    config = counting_config(hypotheses=one_hypothesis("wilcoxon", {"alpha": 0.01, "method": "exact"}))
    code = (
        "import json, sys\n"
        "from repliflow.core.plan import build_plan\n"
        f"build_plan(json.loads({json.dumps(json.dumps(config))}), workdir={str(workdir)!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'numpy')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- step names ------------------------------------------------------------------------


def test_same_function_twice_without_a_name(workdir):
    pipeline = [{"function": "scale"}, {"function": "scale"}, {"function": "metrics"}]
    message = config_error(workdir, pipeline=pipeline, treatments={})
    assert "key 'pipeline.1.name'" in message
    assert "'scale' is used twice (pipeline.0 and pipeline.1)" in message


def test_explicit_duplicate_step_names(workdir):
    pipeline = [
        {"function": "scale", "name": "s"},
        {"function": "loose", "name": "t"},
        {"function": "metrics", "name": "s"},
    ]
    message = config_error(workdir, pipeline=pipeline, treatments={})
    assert "key 'pipeline.2.name'" in message
    assert "'s' is used twice (pipeline.0 and pipeline.2)" in message


def test_step_named_datasource_clashes_with_the_datasource(workdir):
    pipeline = [{"function": "scale", "name": "datasource"}, {"function": "metrics"}]
    message = config_error(workdir, pipeline=pipeline, treatments={})
    assert "key 'pipeline.0.name'" in message and "'datasource' is used twice" in message


# --- names that become paths -------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "/abs", ".hidden", "x..y"])
def test_experiment_name_cannot_escape_results(workdir, name):
    message = config_error(workdir, experiment=name)
    assert "key 'experiment'" in message
    assert repr(name) in message


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "/abs", ".hidden", "x..y"])
def test_planner_refuses_path_names_even_without_the_schema(workdir, name):
    with pytest.raises(ConfigError) as info:
        build_plan(counting_config(experiment=name), workdir=str(workdir))
    assert "key 'experiment'" in str(info.value) and repr(name) in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_plan(counting_config(treatments={name: {"scale": {"factor": 2.0}}}), workdir=str(workdir))
    assert f"key 'treatments.{name}'" in str(info.value)


@pytest.mark.parametrize("name", ["a/b", "..", "../t", "x..y"])
def test_treatment_name_with_a_path(workdir, name):
    message = config_error(workdir, treatments={name: {"scale": {"factor": 2.0}}})
    assert "key 'treatments" in message
    assert repr(name) in message


@pytest.mark.parametrize("name", ["a/b", "..", "../s", "x..y"])
def test_step_name_with_a_path(workdir, name):
    pipeline = [{"function": "scale", "name": name}, {"function": "metrics"}]
    message = config_error(workdir, pipeline=pipeline, treatments={})
    assert "key 'pipeline.0.name'" in message
    assert repr(name) in message


def test_baseline_is_not_a_treatment_name(workdir):
    message = config_error(workdir, treatments={"baseline": {"scale": {"factor": 2.0}}})
    assert "key 'treatments.baseline'" in message and "reserved" in message


def test_unknown_top_level_key(workdir):
    message = config_error(workdir, replicate=5)
    assert "'replicate' was unexpected" in message
    assert "key '(top level)'" in message


# --- bounds and hygiene (issue 12, item 8) -----------------------------------------------------
# Config values must have a JSON form (a recipe key hashes canonical JSON), config and code files
# must be readable text, a YAML key given twice is an error rather than silently last-wins, and
# `replicates` is bounded. Each ends with one message naming the key and file, never a traceback.


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (_math.nan, "nan is not a finite number"),
        (_math.inf, "inf is not a finite number"),
        (_datetime.date(2024, 1, 2), "as a date"),
        (_datetime.datetime(2024, 1, 2, 10, 0), "as a timestamp"),
        ({"a", "b"}, "a set"),
        (b"hello", "binary data"),
        ((1, 2), "Python tuple"),
        ({1: "x"}, "the mapping key 1 is a number"),
    ],
    ids=["nan", "inf", "date", "timestamp", "set", "binary", "python-tuple", "int-key"],
)
def test_value_without_a_json_form_names_its_key(workdir, value, words):
    message = config_error(workdir, datasource={"function": "source", "params": {"n": value}})
    key = "datasource.params.n.1" if words.startswith("the mapping key") else "datasource.params.n"
    assert f"key '{key}'" in message and words in message, message


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"treatments": {"t": {"scale": {"factor": _math.inf}}}}, "treatments.t.scale.factor"),
        ({"grid": {"scale.factor": [1.0, -_math.inf]}}, "grid.scale.factor.1"),
        (
            {
                "hypotheses": [
                    {"name": "h", "metric": "spread", "verifier": "welch_t", "params": {"x": _math.nan}}
                ]
            },
            "hypotheses.0.params.x",
        ),
        (
            {"pipeline": [{"function": "scale", "params": {"factor": [_math.nan]}}, {"function": "metrics"}]},
            "pipeline.0.params.factor.0",
        ),
    ],
    ids=["treatment", "grid", "hypothesis", "nested-in-a-list"],
)
def test_non_finite_value_anywhere_names_its_key(workdir, overrides, key):
    message = config_error(workdir, **overrides)
    assert f"key '{key}'" in message and "not a finite number" in message, message


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("n: .nan", "nan is not a finite number"),
        ("n: -.inf", "-inf is not a finite number"),
        ("n: 2024-01-02", "YAML read 2024-01-02 as a date"),
        ("n: 2024-01-02T10:00:00Z", "as a timestamp"),
        ("n: !!set {a, b}", "a set (YAML !!set)"),
        ("n: !!binary aGVsbG8=", "binary data (YAML !!binary)"),
        ("n: !!python/tuple [1, 2]", "line 7: the YAML tag !!python/tuple"),
        ("n: !!python/object/apply:os.system [echo hi]", "the YAML tag !!python/object/apply:os.system"),
    ],
    ids=["nan", "inf", "date", "timestamp", "set", "binary", "python-tuple", "python-object"],
)
def test_config_file_value_without_a_json_form_names_file_and_key(tmp_path, written, words):
    path = write(tmp_path / "cfg.yaml", COUNTING_YAML.replace("n: 5", written))
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = str(info.value)
    assert f"config file {path}, key 'datasource.params.n'" in message and words in message, message


def test_non_utf8_config_file_names_the_file_and_byte(tmp_path):
    path = write(
        tmp_path / "cfg.yaml", COUNTING_YAML.replace("seed: 7", "seed: 7  # caf\xe9").encode("latin-1")
    )
    offset = COUNTING_YAML.index("seed: 7") + len("seed: 7  # caf")
    with pytest.raises(ConfigError) as info:
        check_config_files([path])
    message = str(info.value)
    assert f"config file {path}" in message and f"byte {offset} (line 4) is 0xe9" in message, message
    assert "UTF-8" in message

    # `repliflow status` reads the config through plan.load_plan: the same message, no traceback
    from repliflow.cli import main

    with pytest.raises(ConfigError, match=f"byte {offset}"):
        load_plan(path, tmp_path)
    assert main(["status", str(path), "--directory", str(tmp_path)]) == 1


def test_non_utf8_code_file_names_the_file_and_byte(workdir):
    source = "def source(ctx, *, n=5):\n    return [0.0] * n  # caf\xe9\n"
    source += "\n\ndef metrics(data, ctx):\n    return {}\n"
    (workdir / "latin.py").write_bytes(source.encode("latin-1"))
    message = config_error(workdir, code="latin.py")
    assert "key 'code'" in message and str(workdir / "latin.py") in message
    assert f"byte {source.index('caf') + 3} (line 2) is 0xe9" in message, message
    # with a coding line (PEP 263) it is read as Python would import it
    (workdir / "declared.py").write_bytes(b"# -*- coding: latin-1 -*-\n" + source.encode("latin-1"))
    assert plans(workdir, code="declared.py", pipeline=[{"function": "metrics"}], treatments={})


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        (COUNTING_YAML + "seed: 8\n", "seed", "lines 4 and 12"),
        (
            COUNTING_YAML.replace("  params: {n: 5}", "  params:\n    n: 5\n    n: 6"),
            "datasource.params.n",
            "lines 8 and 9",
        ),
        (
            COUNTING_YAML.replace("{factor: 1.0}", "{factor: 1.0, factor: 2.0}"),
            "pipeline.0.params.factor",
            "lines 10 and 10",
        ),
    ],
    ids=["top-level", "nested", "in-a-list"],
)
def test_duplicate_yaml_key_names_key_file_and_lines(tmp_path, text, key, lines):
    path = write(tmp_path / "cfg.yaml", text)
    with pytest.raises(ConfigError) as info:
        check_config_files([path])
    message = str(info.value)
    assert (
        f"config file {path}, key '{key}'" in message and f"given twice in one mapping ({lines})" in message
    )
    with pytest.raises(ConfigError, match="given twice"):
        load_plan(path, tmp_path)


def test_duplicate_key_in_a_json_config_and_yaml_merge_keys(tmp_path):
    path = write(tmp_path / "cfg.json", '{"experiment": "exp", "replicates": 5, "replicates": 6}')
    with pytest.raises(ConfigError, match="'replicates' is given twice in one JSON object"):
        check_config_files([path])
    # '<<: *anchor' then an explicit key is YAML's way to override a merged value: allowed
    merged = write(tmp_path / "merged.yaml", "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")
    assert load_config_file(merged)["other"] == {"x": 3, "y": 2}


def test_replicates_above_ten_million_names_the_key_and_the_limit(workdir):
    message = config_error(workdir, replicates=10**7 + 1)
    assert "key 'replicates'" in message and "10000001" in message, message
    assert "at most 10000000" in message and "memory" in message
    assert validate_config(counting_config(replicates=10**7), file=CFG)["replicates"] == 10**7


# --- concurrency, max_rate, retries ---------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key", "shown"),
    [
        ({"datasource": {"function": "source", "concurrency": 0}}, "datasource.concurrency", "0"),
        ({"datasource": {"function": "source", "concurrency": "8"}}, "datasource.concurrency", "'8'"),
        ({"datasource": {"function": "source", "concurrency": 5000}}, "datasource.concurrency", "5000"),
        ({"batch": {"concurrency": 0}}, "batch.concurrency", "0"),
        ({"datasource": {"function": "source", "max_rate": 0}}, "datasource.max_rate", "0"),
        (
            {"pipeline": [{"function": "scale", "retries": {"attempts": 2}}, {"function": "metrics"}]},
            "pipeline.0.retries",
            "exceptions",
        ),
        (
            {"datasource": {"function": "source", "retries": {"attempts": 0, "exceptions": ["OSError"]}}},
            "datasource.retries.attempts",
            "0",
        ),
        (
            {"datasource": {"function": "source", "retries": {"attempts": 1, "exceptions": ["not a name"]}}},
            "datasource.retries.exceptions.0",
            "'not a name'",
        ),
        (
            {"datasource": {"function": "source", "retries": {"attempts": 1, "on": ["OSError"]}}},
            "datasource.retries",
            "'on'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_concurrency_rate_and_retries_name_their_key(workdir, overrides, key, shown):
    message = config_error(workdir, **overrides)
    assert f"key '{key}'" in message
    assert shown in message


def test_code_environment_is_the_configs_file_made_absolute_or_the_default(tmp_path):
    from repliflow.core.config import code_environment

    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "steps.yaml").write_text("dependencies: []\n")
    assert code_environment({}, "../../envs/repliflow.yaml", tmp_path) == "../../envs/repliflow.yaml"
    found = code_environment({"conda": "envs/steps.yaml"}, "x", tmp_path)
    assert found == str((tmp_path / "envs" / "steps.yaml").resolve())
    with pytest.raises(ConfigError) as info:
        code_environment({"conda": "envs"}, "x", tmp_path)  # a folder, not a file
    assert "key 'conda'" in str(info.value)
