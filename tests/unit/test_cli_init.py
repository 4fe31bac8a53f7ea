"""`repliflow init` and `repliflow run` on bad ground: a clear line, exit 1, no traceback
(the happy paths run the workflow: tests/workflow/test_install.py)."""

from __future__ import annotations

from repliflow.cli import main


def test_init_writes_the_default_experiment_and_never_overwrites(tmp_path, capsys):
    assert main(["init", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "config" / "config.yaml").is_file()
    assert (tmp_path / "exp" / "examples" / "titanic" / "steps.py").is_file()
    assert main(["init", str(tmp_path / "exp")]) == 1
    assert "already exist" in capsys.readouterr().err


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
