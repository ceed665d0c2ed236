"""Write the run's report.md: every metric and figure of the run, with links.

Book chapter 07_report.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd

from casestudy import CaseStudyError, data, files, plots
from casestudy.config import RunConfig
from casestudy.runs import RunFolder

FIGURES = [
    ("training_curves.png", "Training curves", "loss and accuracy per epoch, train and validation"),
    ("confusion_matrix.png", "Confusion matrix", "test split; positive = fake"),
    ("roc.png", "ROC curve", "test split; positive = fake"),
    ("robustness.png", "Robustness", "test images after JPEG, downscaling and blur"),
    ("tsne.png", "t-SNE of the embeddings", "test split; crosses are misclassified"),
    ("gradcam_examples.png", "Grad-CAM examples", "where the evidence for the decision lies"),
    ("gradcam_mean.png", "Mean Grad-CAM per class", "average heat map of each true class"),
]


def metric_row(name: str, m: dict) -> str:
    auc = "n/a" if m.get("roc_auc") is None else f"{m['roc_auc']:.3f}"
    return (f"| {name} | {m['n']} | {m['accuracy']:.3f} | {m['precision']:.3f} | "
            f"{m['recall']:.3f} | {m['f1']:.3f} | {auc} |")


def metrics_table(rows: dict) -> list[str]:
    lines = ["| images | n | accuracy | precision | recall | F1 | ROC-AUC |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    return lines + [metric_row(name, m) for name, m in rows.items()]


QUESTIONS = {"balanced": "Is the data balanced?",
             "brightness": "Do real and fake differ in brightness; would brightness alone detect fakes?",
             "spectrum": "Do they share the same distribution of mean FFT magnitude (texture)?",
             "cnn_possible": "Does that mean a CNN cannot tell them apart?",
             "strongest": "What separates them best before any deep learning?"}


def data_section(index: pd.DataFrame, index_path: Path, split: pd.DataFrame | None = None) -> list[str]:
    """The run's images per split and class; every file found, used or skipped (and why)."""
    table = data.summarize(index if split is None else split)
    skipped = data.skipped_files(index)
    lines = ["## Data", "", "| split | " + " | ".join(table.columns) + " |",
             "| --- |" + " ---: |" * len(table.columns),
             *[f"| {split} | " + " | ".join(str(v) for v in row) + " |" for split, row in table.iterrows()],
             "", f"{data.describe_tally(data.tally(index))}; the `status` column of {index_path} "
             "says why each file was skipped.", ""]
    lines += [f"- skipped `{file}`: {why}" for file, why in skipped[:data.LIST_SKIPPED]]
    if len(skipped) > data.LIST_SKIPPED:
        lines.append(f"- ... and {len(skipped) - data.LIST_SKIPPED} more")
    return lines + ([""] if skipped else [])


def eda_section(run: Path) -> list[str]:
    """The EDA's answers in one sentence each, its numbers and its figures."""
    from casestudy import eda, eda_plots

    summary = eda.load_summary(run)
    if summary is None:
        return []
    n = summary["n_images"]
    lines = ["## Exploring the data", "",
             f"Measured on a seeded sample of {n['real']} real and {n['fake']} fake images "
             "([eda.csv](eda.csv), [eda_summary.json](eda_summary.json)).", ""]
    lines += [f"- **{QUESTIONS[key]}** {answer}" for key, answer in summary["answers"].items()]
    lines += ["", "| feature | real mean (sd) | fake mean (sd) | Cohen's d | KS p | AUC | held-out acc. |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, f in summary["features"].items():
        lines.append(f"| {eda.FEATURE_NAMES[name]} | {f['real_mean']:.4g} ({f['real_sd']:.3g}) | "
                     f"{f['fake_mean']:.4g} ({f['fake_sd']:.3g}) | {f['cohens_d']:+.2f} | "
                     f"{f['ks_p']:.2g} | {f['auc']:.3f} | {f['threshold_accuracy']:.3f} |")
    b = summary["baseline"]
    lines += ["", f"Baseline: {b['model']}, {b['folds']}-fold cross-validated accuracy "
              f"{b['accuracy']:.3f} (sd {b['accuracy_sd']:.3f}), ROC-AUC {b['auc']:.3f}.", ""]
    if summary["skipped"]:
        lines += [f"{len(summary['skipped'])} file(s) could not be read and were skipped: "
                  + "; ".join(f"`{p}` ({why})" for p, why in summary["skipped"].items()), ""]
    lines += figure_lines(run, eda_plots.FIGURES, level="###")
    return lines


def figure_lines(run: Path, figures: list, level: str = "###") -> list[str]:
    lines = []
    for file, title, caption in figures:
        if (run / "figures" / file).is_file():
            lines += [f"{level} {title}", "", f"![{title}](figures/{file})", "", f"*{caption}*", ""]
    return lines


def settings_line(config: RunConfig) -> str:
    """The run's real settings, as its config.yaml holds them."""
    crop = f"random {config.train_crop} px crops" if config.train_crop else "no crop"
    return (f"- data: `{config.data}`, split with seed {config.seed}; images {config.image_size} px; "
            f"weights `{config.weights}`; {config.epochs} epochs, batch {config.batch_size}, "
            f"lr {config.lr:g}{f' (tuned for batch {config.lr_batch})' if config.lr_batch else ''}, "
            f"weight decay {config.weight_decay:g}; augmentation: {crop}, padding "
            f"{config.crop_padding}, flips {'on' if config.flip else 'off'}, jitter {config.jitter:g}")


@contextlib.contextmanager
def reading(path: Path, remedy: str):
    """A run file that cannot be read as its stage wrote it is one line: which file, what to run."""
    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as err:  # JSON, CSV, shape
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CaseStudyError(f"{path} is damaged ({why}); {remedy}") from None


def read_json(path: Path) -> dict:
    values = json.loads(Path(path).read_text())
    if not isinstance(values, dict):
        raise TypeError("not a JSON object")
    return values


def write_report(config: RunConfig, progress: bool = False) -> Path:
    """Assemble runs/<name>/report.md from what the stages wrote, with the run's own settings."""
    folder = RunFolder.of(config)
    trained = folder.is_trained()
    config = folder.trained_config(config) if trained else config
    run = folder.path
    lines = [f"# Who's the Imposter? Report of run `{config.name}`", ""]
    if data.is_synthetic(config.data):
        lines += [f"> **{plots.SYNTHETIC_TAG}.** This run used the embedded synthetic dataset; "
                  "its numbers show that the pipeline works, not how well fakes are detected.", ""]
    if not trained:
        lines += ["> This run has not been trained yet: the report holds what the stages run so far "
                  "wrote, and the settings below are those it was asked with.", ""]
    lines += [settings_line(config),
              "- labels: real = 0, fake = 1; precision, recall and F1 treat **fake** as positive",
              "- settings: [config.yaml](config.yaml); split: [split.csv](split.csv); "
              "predictions: [predictions.csv](predictions.csv)",
              ""]
    index_path = data.dataset_dir(config.data, config.data_root) / "index.csv"
    if index_path.is_file():
        lines += data_section(data.load_index(index_path), index_path,
                              folder.read_split(index_path.parent) if folder.split.is_file() else None)
    again = f"run `casestudy {{}} --name {config.name}` again"
    with reading(folder.eda_summary, again.format("eda")):
        lines += eda_section(run)
    if folder.history.is_file():
        with reading(folder.history, f"train the run again with `casestudy train --name {config.name} "
                     f"--overwrite`"):
            history = pd.read_csv(folder.history)
            best = history.loc[history.val_acc.idxmax()]
            lines += ["## Training", "", f"Best validation accuracy {best.val_acc:.3f} at epoch "
                      f"{int(best.epoch)} of {len(history)} ([history.csv](history.csv)).", ""]
    if folder.metrics.is_file():
        with reading(folder.metrics, again.format("evaluate")):
            metrics = read_json(folder.metrics)
            rows = {"test (clean)": metrics, **metrics.get("perturbations", {})}
            c = metrics["confusion"]
            lines += ["## Evaluation", "", *metrics_table(rows), "",
                      f"Confusion: {c['tp']} fakes caught, {c['fn']} fakes missed, {c['fp']} real "
                      f"images called fake, {c['tn']} real images passed ([metrics.json](metrics.json)).",
                      ""]
    others = sorted((run / "eval").glob("*/metrics.json")) if (run / "eval").is_dir() else []
    rows = {}
    for path in others:
        with reading(path, again.format("evaluate") + " with --eval-data"):
            rows[path.parent.name] = read_json(path)
            metric_row(path.parent.name, rows[path.parent.name])
    if rows:
        lines += ["## Other datasets", "", *metrics_table(rows), ""]
    lines += ["## Figures", "", *figure_lines(run, FIGURES)]
    return files.write_text("\n".join(lines), folder.report)
