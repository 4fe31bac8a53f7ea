"""`repliflow init` and `repliflow run` on bad ground: a clear line, exit 1, no traceback
(the happy paths run the workflow: tests/workflow/test_install.py)."""

from __future__ import annotations

from repliflow.cli import main


def test_init_writes_the_starter_and_never_overwrites(tmp_path, capsys):
    assert main(["init", str(tmp_path / "exp")]) == 0
    for name in ["Snakefile", "config/config.yaml", "steps.py", ".gitignore"]:
        assert (tmp_path / "exp" / name).is_file(), name
    assert "use rule * from repliflow" in (tmp_path / "exp" / "Snakefile").read_text()
    assert "results/" in (tmp_path / "exp" / ".gitignore").read_text().splitlines()
    assert "snakemake --cores all" in capsys.readouterr().err
    (tmp_path / "exp" / "steps.py").write_text("# mine")
    assert main(["init", str(tmp_path / "exp")]) == 1
    assert "already exist" in capsys.readouterr().err
    assert (tmp_path / "exp" / "steps.py").read_text() == "# mine"


def test_init_an_example_copies_it_with_the_starters_snakefile(tmp_path, capsys):
    assert main(["init", str(tmp_path / "exp"), "--example", "titanic"]) == 0
    assert (tmp_path / "exp" / "examples" / "titanic" / "steps.py").is_file()
    assert "examples/titanic/steps.py" in (tmp_path / "exp" / "config" / "config.yaml").read_text()
    assert (tmp_path / "exp" / "Snakefile").is_file() and not (tmp_path / "exp" / "steps.py").exists()
    assert main(["init", str(tmp_path / "exp"), "--example", "titanic"]) == 1


def test_the_starter_config_is_valid_and_plans(tmp_path):
    from repliflow import load_plan

    assert main(["init", str(tmp_path)]) == 0
    plan = load_plan(tmp_path / "config" / "config.yaml", tmp_path)
    assert [c.name for c in plan.conditions] == ["baseline", "shifted", "loose_trim"]
    # loose_trim shares the baseline's datasource outputs
    assert plan.keys("loose_trim", 0)[0] == plan.keys("baseline", 0)[0]


def test_snakefile_prints_the_installed_workflow(capsys):
    from repliflow.shipped import snakefile

    assert main(["snakefile"]) == 0
    assert capsys.readouterr().out.strip() == str(snakefile())


def test_init_into_a_file_says_so(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["init", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("repliflow init: cannot write the experiment into") and "Traceback" not in err


def test_run_without_a_config_points_at_init(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--cores", "1"]) == 1
    assert "repliflow init" in capsys.readouterr().err
    assert main(["run", "--cores", "1", "--directory", str(tmp_path / "nowhere")]) == 1
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
