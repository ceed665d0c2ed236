"""A run folder, runs/<name>/: the name of every file in it, its settings, its split and its lock.

The run folder is the truth about its run. A stage that acts on a trained run takes the run's
settings from its config.yaml (checked against its checkpoint) and the images of each split from
its split.csv, written when training started, so that the test split it evaluates is provably the
one the run was not trained on. Nothing here imports torch until a model is loaded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from casestudy import CaseStudyError
from casestudy.config import FIELDS, RUN, RunConfig, contradictions, from_dict, role

SPLIT_COLUMNS = ["path", "label", "split", "sha256"]
_HELD: dict[Path, int] = {}  # run folders this process holds, and how many times (re-entrant)

try:  # POSIX: the lock dies with its process, so a killed run's lock is taken over
    import fcntl
except ImportError:  # Windows: no fcntl; the lock file still names the process
    fcntl = None


@dataclass(frozen=True)
class RunFolder:
    """Every file of one run, by name."""

    path: Path

    @classmethod
    def of(cls, config: RunConfig) -> RunFolder:
        return cls(config.run_dir)

    @property
    def name(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / "config.yaml")
    split = property(lambda self: self.path / "split.csv")
    best = property(lambda self: self.path / "checkpoint.pt")
    last = property(lambda self: self.path / "last.pt")
    history = property(lambda self: self.path / "history.csv")
    metrics = property(lambda self: self.path / "metrics.json")
    predictions = property(lambda self: self.path / "predictions.csv")
    embeddings = property(lambda self: self.path / "embeddings.npz")
    report = property(lambda self: self.path / "report.md")
    eda_table = property(lambda self: self.path / "eda.csv")
    eda_summary = property(lambda self: self.path / "eda_summary.json")
    figures = property(lambda self: self.path / "figures")
    lock_file = property(lambda self: self.path / ".lock")

    def figure(self, name: str) -> Path:
        return self.figures / name

    def eval_dir(self, dataset: str) -> Path:
        """Where the results on another dataset go: runs/<name>/eval/<dataset>/."""
        return self.path / "eval" / dataset

    def is_trained(self) -> bool:
        return self.best.is_file()

    # ------------------------------------------------------------ settings

    def saved_config(self) -> RunConfig:
        """The settings the run was trained with (config.yaml), checked like any other."""
        if not self.best.is_file():
            raise CaseStudyError(f"run {self.name!r} has not been trained: {self.best} does not exist; "
                                 f"run `casestudy train --name {self.name}` first")
        if not self.config.is_file():
            raise CaseStudyError(f"run {self.name!r} lacks {self.config} (its settings); restore it, or "
                                 f"train the run again with `casestudy train --name {self.name} --overwrite`")
        try:
            values = yaml.safe_load(self.config.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
            raise CaseStudyError(f"{self.config} is damaged ({str(err).splitlines()[0]}); train the run "
                                 f"again with `casestudy train --name {self.name} --overwrite`") from None
        if not isinstance(values, dict):
            raise CaseStudyError(f"{self.config} is damaged (not a mapping of settings); train the run "
                                 f"again with `casestudy train --name {self.name} --overwrite`")
        values = {k: v for k, v in values.items() if k in FIELDS}  # settings a later version dropped
        try:
            return from_dict({**values, "name": self.name, "runs_root": str(self.path.parent)})
        except CaseStudyError as err:
            raise CaseStudyError(f"{self.config} is damaged ({err}); restore it, or train the run again "
                                 f"with `casestudy train --name {self.name} --overwrite`") from None

    def trained_config(self, config: RunConfig, explicit=None, saved: RunConfig | None = None
                       ) -> RunConfig:
        """The settings a later stage must use: the run's, plus the caller's stage and place settings.

        `explicit` names the settings the user chose (CLI flags and an explicitly chosen preset);
        None means all of config's. A chosen run setting that differs from the run's is an error
        naming both values.
        """
        saved = saved or self.saved_config()
        chosen = set(FIELDS) if explicit is None else set(explicit)
        clashes = contradictions(saved, config, [n for n in FIELDS if role(n) == RUN and n in chosen])
        if clashes:
            raise CaseStudyError(f"run {self.name!r} was trained with other settings: "
                                 f"{'; '.join(clashes)}. Leave them out (the run's are used), or "
                                 f"train a new run with another --name")
        own = {n: getattr(config, n) for n in FIELDS if role(n) != RUN}
        return from_dict({**saved.to_dict(), **own, "name": self.name,
                          "runs_root": str(self.path.parent)})

    def check_checkpoint_config(self, checkpoint: dict, config: RunConfig) -> None:
        """The checkpoint's own settings must be config.yaml's (an edited config.yaml is refused)."""
        stored = checkpoint.get("config") or {}
        differ = [f"{n} {stored[n]!r} in the checkpoint, {getattr(config, n)!r} in config.yaml"
                  for n in FIELDS if role(n) == RUN and n in stored and stored[n] != getattr(config, n)
                  and n != "data"]
        if differ:
            raise CaseStudyError(f"{self.config} no longer matches {self.best}: {'; '.join(differ)}; "
                                 f"restore config.yaml or train again with --overwrite")

    # ------------------------------------------------------------ the model and the split

    def load_model(self, config: RunConfig, device):
        """Load the best checkpoint onto device, checked against config.yaml; return (model, checkpoint)."""
        from casestudy.model import load_checkpoint

        model, checkpoint = load_checkpoint(self.best, device)
        self.check_checkpoint_config(checkpoint, config)
        return model, checkpoint

    def write_split(self, index, base: Path) -> None:
        """Keep the split the run trains on: path, label, split and checksum of every image used,
        paths relative to base (the dataset's folder) as in its index.csv."""
        from casestudy.data import stored_paths
        from casestudy.files import write_csv

        rows = index.loc[index.split != "", SPLIT_COLUMNS]
        write_csv(rows.assign(path=stored_paths(rows.path, base)), self.split)

    def read_split(self, base: Path | None = None):
        """The split's rows, relative paths resolved against base (the dataset's folder) if given."""
        import pandas as pd

        from casestudy.data import resolved_paths
        from casestudy.files import read_csv

        try:
            rows = read_csv(self.split, dtype={"path": str, "split": str, "sha256": str},
                            keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise CaseStudyError(f"{self.split} is damaged ({str(err).splitlines()[0]}); train the run "
                                 f"again with `casestudy train --name {self.name} --overwrite`") from None
        if set(SPLIT_COLUMNS) - set(rows.columns):
            raise CaseStudyError(f"{self.split} is damaged (it lacks columns); train the run again with "
                                 f"`casestudy train --name {self.name} --overwrite`")
        return rows if base is None else rows.assign(path=resolved_paths(rows.path, base))

    def load_images(self, config: RunConfig, *splits: str, progress: bool = True) -> list:
        """(images, labels, paths) of each split of this run, exactly the files it was split into.

        The images must still be the ones the run saw: a file that is gone, was relabelled or
        rewritten since training is an error, never a silent substitute. No image of the test or
        validation split may have the bytes of a training image.
        """
        from casestudy import data

        if not self.split.is_file():
            raise CaseStudyError(f"run {self.name!r} has no {self.split.name} (the images it was split "
                                 f"into), so its test split cannot be shown to be held out; train it "
                                 f"again with `casestudy train --name {self.name} --overwrite`")
        index_path = data.prepare_for(config, progress=progress)
        current = data.load_index(index_path)
        rows = self.read_split(index_path.parent)
        data.check_leakage(rows)
        usable = current[current.status == "ok"].set_index("path")
        wanted = rows[rows.split.isin(splits)]
        now = wanted[["path"]].merge(usable[["sha256", "label"]], left_on="path", right_index=True,
                                     how="left")
        same = (now.sha256.to_numpy() == wanted.sha256.to_numpy()) & (
            now.label.to_numpy() == wanted.label.to_numpy())
        if not same.all():
            bad = wanted[~same]
            raise CaseStudyError(
                f"{len(bad)} image(s) of run {self.name!r}'s {'/'.join(splits)} split changed, moved or "
                f"vanished since it was trained (e.g. {bad.path.iloc[0]}); restore them, or train again "
                f"with `casestudy train --name {self.name} --overwrite`")
        return [data.load_split(rows, split, config.image_size, index_path.parent / "cache", progress)
                for split in splits]

    # ------------------------------------------------------------ the lock

    @contextlib.contextmanager
    def lock(self, command: str):
        """Hold the run for one writer; a second one is refused, naming the process that holds it.

        Re-entrant within a process (`casestudy run` holds it for every stage); under torchrun
        only rank 0, the one that writes, takes it.
        """
        key = self.path.resolve()
        if _HELD.get(key) or os.environ.get("RANK", "0") != "0":
            _HELD[key] = _HELD.get(key, 0) + 1
            try:
                yield self
            finally:
                _HELD[key] -= 1
            return
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+")
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise CaseStudyError(f"run {self.name!r} is in use by {holder}; wait for it to "
                                         f"finish or stop it, or choose another --name") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()} ({command}, started "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')})")
            handle.flush()
            _HELD[key] = 1
            yield self
        finally:
            _HELD.pop(key, None)
            handle.close()  # closing releases the lock; a killed process's lock is released too
