"""The command line end to end, as a user types it."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from astroloom.cli import app

runner = CliRunner()


def astroloom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "astroloom.cli", *args], capture_output=True, text=True
    )


def test_every_command_has_help():
    for cmd in [
        [],
        ["data"],
        ["data", "simulate"],
        ["data", "info"],
        ["data", "show"],
        ["data", "ingest"],
        ["scaling", "sweep"],
        ["scaling", "fit"],
        ["scaling", "table"],
        ["train"],
        ["embed"],
        ["probe"],
        ["demo"],
    ]:
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0, cmd
        assert "Usage" in result.output


def test_help_sentences_are_not_broken_where_the_docstring_wraps():
    import typer.main

    group = typer.main.get_command(app)
    commands = [(name, c) for name, c in group.commands.items()]
    commands += [
        (f"{name} {sub}", c2)
        for name, c in group.commands.items()
        for sub, c2 in getattr(c, "commands", {}).items()
    ]
    assert len(commands) > 20
    for name, command in commands:
        for paragraph in (command.help or "").split("\n\n"):
            assert "\n" not in paragraph, (name, paragraph)
    assert group.commands["probe"].help.startswith("Cross-validated probes of labels from")


def test_journey_through_the_cli(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    r = runner.invoke(
        app,
        ["data", "simulate", "--out", str(data), "--n", "120", "--stars", "20", "--workers", "1"],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "data",
            "show",
            str(data),
            "--out",
            str(tmp_path / "show.png"),
            "--n",
            "8",
            "--labels",
            "redshift,morph_type",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "show.png").stat().st_size > 10_000
    assert (tmp_path / "show-modalities.png").stat().st_size > 10_000
    r = runner.invoke(app, ["data", "show", str(data), "--labels", "shoe_size"])
    assert r.exit_code != 0 and "shoe_size" in str(r.exception)
    for n in ("0", "-2"):  # no objects to show: an error, not matplotlib's or a short grid
        r = runner.invoke(app, ["data", "show", str(data), "--n", n])
        assert r.exit_code != 0 and "at least 1" in str(r.exception), n
    r = runner.invoke(app, ["data", "info", str(data)])
    assert "140 objects" in r.output and "120 with image" in r.output
    assert "20 with lightcurve" in r.output and "120 with spectrum" in r.output
    assert "redshift" in r.output and "lightcurve: bands=['I', 'V']" in r.output
    # Statistics over every object, read without the pixels: the stars' classes are there.
    assert "var_class" in r.output and "(no values)" not in r.output
    r = runner.invoke(
        app,
        [
            "train",
            "--set",
            f"data.path='{data}'",
            "--set",
            f"out='{run}'",
            "--set",
            "train.steps=20",
            "--set",
            "model.n_layer=2",
            "--set",
            "model.n_embd=32",
            "--set",
            "train.batch_size=8",
            "--set",
            "train.warmup_steps=2",
            "--set",
            "train.eval_every=10",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (run / "final" / "model.safetensors").exists() and (run / "loss.png").exists()
    r = runner.invoke(app, ["embed", str(run), str(data)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "probe",
            str(run / "embeddings.parquet"),
            "--target",
            "mag_r",
            "--target",
            "redshift",
            "--folds",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "| mag_r |" in r.output and "| redshift |" in r.output and (run / "probe.json").exists()
    r = runner.invoke(
        app, ["probe", str(run / "embeddings.parquet"), "--target", "morph_type", "--folds", "3"]
    )
    assert r.exit_code == 0, r.output  # categorical: a logistic probe
    assert "| morph_type |" in r.output and "ROC-AUC" in r.output
    # The few-shot curve and probe types that bench has, from an embeddings file.
    r = runner.invoke(
        app,
        [
            "probe",
            str(run / "embeddings.parquet"),
            "--target",
            "mag_r",
            "--target",
            "morph_type",
            "--budget",
            "20",
            "--budget",
            "all",
            "--method",
            "linear",
            "--method",
            "knn",
            "--seeds",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    curves = json.loads((run / "probe_curves.json").read_text())["curves"]
    assert [c["task"] for c in curves] == ["regression", "classification"]
    rows = curves[0]["rows"]
    assert {(r["feature"], r["method"]) for r in rows} == {
        (f, m) for f in ("foundation", "pixel PCA", "random weights") for m in ("linear", "knn")
    }
    assert {r["budget"] for r in rows} == {20, -1}
    assert sum(r["budget"] == 20 for r in rows) == 2 * len(
        {(r["feature"], r["method"]) for r in rows}
    )
    # Brightness is in the pixels: every feature set reads mag_r from all the labels.
    best = max(r["r2"] for r in rows if r["budget"] == -1 and r["feature"] == "foundation")
    assert best > 0.5 and (run / "probe_curves.png").stat().st_size > 10_000
    r = runner.invoke(
        app, ["probe", str(run / "embeddings.parquet"), "--budget", "20", "--method", "svm"]
    )
    assert r.exit_code != 0 and "unknown probe(s) ['svm']" in str(r.exception)
    # Settings with no probe behind them: one clear error each, before any fitting.
    embeddings = str(run / "embeddings.parquet")
    for args, says in (
        (["probe", embeddings, "--folds", "1"], "2 or more"),
        (["probe", embeddings, "--budget", "0"], "positive number of labels"),
        (["probe", embeddings, "--budget", "x"], "positive number of labels"),
        (["probe", embeddings, "--budget", "20", "--seeds", "0"], "at least 1"),
        (["bench", str(run), str(data), "--budgets", "-5"], "positive number of labels"),
        (["bench", str(run), str(data), "--seeds", "0"], "at least 1 seed"),
    ):
        r = runner.invoke(app, args)
        assert r.exit_code != 0 and says in str(r.exception), args


def test_user_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstpes = 10\n")
    r = astroloom("train", str(bad))
    assert r.returncode == 2
    assert "error: unknown key in [train] 'stpes'" in r.stderr and "steps" in r.stderr
    assert "Traceback" not in r.stderr
    r = astroloom("data", "info", str(tmp_path / "missing"))
    assert r.returncode == 2 and "data path not found" in r.stderr
    r = astroloom("embed", str(tmp_path), str(tmp_path))
    assert r.returncode == 2 and "no checkpoint found" in r.stderr
