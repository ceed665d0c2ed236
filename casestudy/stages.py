"""The stages of the case study, in order: what each needs, what it writes, how it is called.

One table that the CLI, `casestudy run`, the book's runner and train.clear_run all read.
Nothing here imports torch: a stage's module is imported when the stage runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from casestudy.config import RunConfig


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    call: str  # "module:function", called as function(config, progress=..., **extra)
    needs: tuple[str, ...]  # stages whose outputs it reads
    writes: tuple[str, ...]  # files in the run folder (globs); the first one says it is done
    on_trained_run: bool  # acts on a trained run: takes the run's settings from its folder
    interrupted: str  # what Ctrl-C keeps, and what to run next; {name} is the run

    @property
    def output(self) -> str:
        return self.writes[0]

    def run(self, config: RunConfig, progress: bool = True, **extra):
        """Run the stage on config's run, holding the run folder's lock."""
        from casestudy.runs import RunFolder

        module, function = self.call.split(":")
        with RunFolder.of(config).lock(f"casestudy {self.name}"):
            return getattr(importlib.import_module(f"casestudy.{module}"), function)(
                config, progress=progress, **extra)


STAGES = (
    Stage("eda", "explore the data: colour, brightness, texture, spectra", "eda:run_eda", (),
          ("eda_summary.json", "eda.csv", "figures/eda_*.png"), False,
          "nothing of this EDA was written (its files are written at the end); run "
          "`casestudy eda --name {name}` again"),
    Stage("train", "train the ResNet18 detector", "train:train", (),
          ("checkpoint.pt", "last.pt", "config.yaml", "split.csv", "history.csv",
           "figures/training_curves.png"), False,
          "every finished epoch is kept in {last}; continue with "
          "`casestudy train --name {name} --resume`"),
    Stage("evaluate", "metrics and figures on the test split", "evaluate:run_evaluation", ("train",),
          ("metrics.json", "predictions.csv", "figures/confusion_matrix.png", "figures/roc.png",
           "figures/robustness.png", "eval"), True,
          "metrics.json is written last and was not replaced; run `casestudy evaluate --name {name}` "
          "again"),
    Stage("tsne", "t-SNE of the test embeddings", "embed:run_tsne", ("train",),
          ("embeddings.npz", "figures/tsne.png"), True,
          "embeddings.npz was not replaced; run `casestudy tsne --name {name}` again"),
    Stage("gradcam", "Grad-CAM heat maps of the test split", "explain:run_gradcam", ("train",),
          ("figures/gradcam_mean.png", "figures/gradcam_examples.png"), True,
          "the Grad-CAM figures were not replaced; run `casestudy gradcam --name {name}` again"),
    Stage("report", "write runs/<name>/report.md from what the stages wrote", "report:write_report",
          ("eda", "train", "evaluate", "tsne", "gradcam"), ("report.md",), True,
          "report.md was not replaced; run `casestudy report --name {name}` again"),
)
BY_NAME = {stage.name: stage for stage in STAGES}
NAMES = [stage.name for stage in STAGES]


def stage(name: str) -> Stage:
    from casestudy import CaseStudyError

    if name not in BY_NAME:
        raise CaseStudyError(f"unknown stage {name!r}: choose from {', '.join(NAMES)}")
    return BY_NAME[name]


def with_needs(*names: str) -> list[str]:
    """The stages named and every stage they need, in pipeline order."""
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo += stage(name).needs
    return [name for name in NAMES if name in wanted]


def model_outputs() -> list[str]:
    """The run files that depend on the trained model: train's and every later stage's."""
    return [pattern for s in STAGES if s.name == "train" or "train" in s.needs for pattern in s.writes]
