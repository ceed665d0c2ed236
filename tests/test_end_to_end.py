"""The whole case study from the command line: on the synthetic data and on real faces."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

ARTEFACTS = ["config.yaml", "checkpoint.pt", "last.pt", "history.csv", "metrics.json",
             "predictions.csv", "embeddings.npz", "report.md", "eda.csv", "eda_summary.json",
             "figures/training_curves.png", "figures/confusion_matrix.png", "figures/roc.png",
             "figures/robustness.png", "figures/tsne.png", "figures/gradcam_examples.png",
             "figures/gradcam_mean.png", "figures/eda_balance.png", "figures/eda_power_spectrum.png"]


def casestudy(*args, cwd, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "casestudy", *args], cwd=cwd, text=True,
                            capture_output=True, env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    result = casestudy("run", "--config", "demo", "--quiet", cwd=cwd)
    return cwd / "runs" / "demo", result.stdout


@pytest.mark.slow
def test_demo_run_produces_every_artefact(demo):
    run, stdout = demo
    missing = [name for name in ARTEFACTS if not (run / name).is_file()]
    assert not missing
    assert "report.md" in stdout  # it says where the results are


@pytest.mark.slow
def test_demo_run_detects_synthetic_fakes(demo):
    run, _ = demo
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.95, metrics
    assert set(metrics["perturbations"]) == {"jpeg:50", "downscale:0.5", "blur:1.0"}
    predictions = pd.read_csv(run / "predictions.csv")
    assert list(predictions.columns) == ["path", "label", "p_fake"]
    assert len(predictions) == metrics["n"]


@pytest.mark.slow
def test_demo_report_links_every_figure_and_says_synthetic(demo):
    run, _ = demo
    report = (run / "report.md").read_text()
    assert "SYNTHETIC" in report
    for figure in (run / "figures").glob("*.png"):
        assert f"figures/{figure.name}" in report


@pytest.mark.slow
def test_a_trained_run_is_evaluated_on_another_dataset(demo, tiny_folder):
    run, _ = demo
    cwd = run.parent.parent
    out = casestudy("evaluate", "--config", "demo", "--eval-data", str(tiny_folder), "--quiet",
                    cwd=cwd).stdout
    other = json.loads((run / "eval" / tiny_folder.name / "metrics.json").read_text())
    assert other["dataset"] == tiny_folder.name and other["n"] == 24  # every usable image
    assert tiny_folder.name in out
    casestudy("report", "--config", "demo", cwd=cwd)
    assert "## Other datasets" in (run / "report.md").read_text()


def test_bad_input_is_one_line_without_traceback(tmp_path):
    result = casestudy("data", "index", "--data", str(tmp_path / "nowhere"), cwd=tmp_path,
                       check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_imagenet_offline_from_the_cli_names_the_alternatives(tmp_path, tiny_folder):
    env = {"TORCH_HOME": str(tmp_path / "th"),
           "CASESTUDY_IMAGENET_URL": "http://127.0.0.1:9/resnet18-f37072fd.pth"}
    result = casestudy("train", "--data", str(tiny_folder), "--weights", "imagenet", "--quiet",
                       "--image-size", "16", cwd=tmp_path, env=env, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--weights none" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_real_faces_end_to_end(shared_sample, tmp_path):
    """Index, train briefly, evaluate, t-SNE and Grad-CAM on real FFHQ / StyleGAN faces."""
    index = casestudy("data", "index", "--data", str(shared_sample), "--quiet", cwd=tmp_path)
    assert "index:" in index.stdout
    casestudy("run", "--config", "sample", "--name", "real", "--data", str(shared_sample),
              "--epochs", "4", "--quiet", cwd=tmp_path)
    run = tmp_path / "runs" / "real"
    missing = [name for name in ARTEFACTS if not (run / name).is_file()]
    assert not missing
    metrics = json.loads((run / "metrics.json").read_text())
    majority = max(metrics["confusion"]["tn"] + metrics["confusion"]["fp"],
                   metrics["confusion"]["tp"] + metrics["confusion"]["fn"]) / metrics["n"]
    assert metrics["accuracy"] > majority, metrics
    assert "SYNTHETIC" not in (run / "report.md").read_text()
