"""Give the book's chapters their run: one config, and the stages each chapter builds on.

Book chapters 01_data to 07_report. Every chapter can be executed alone and in any order:
it calls `ensure(config, ...)` for the stages it needs, which runs only those whose outputs
are missing or stale, then calls its own stage as a reader would. The data comes from the
environment variable CASESTUDY_BOOK_DATA: unset (the synthetic set, `book` preset, CPU),
`course` (the fetched course data, `course` preset) or a folder with real/ and fake/
(`sample` preset). Data and runs go beside book/, into data/ and runs/.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from casestudy import CaseStudyError, data, stages
from casestudy.config import RunConfig, contradictions, load_config, run_settings
from casestudy.runs import RunFolder

DATA_VARIABLE = "CASESTUDY_BOOK_DATA"


def book_root(cwd: Path | None = None) -> Path:
    """The repository when run from its book/ folder (data/ and runs/ go there), else the cwd."""
    cwd = Path(cwd or Path.cwd()).resolve()
    return cwd.parent if (cwd.parent / "casestudy").is_dir() and cwd.name == "book" else cwd


def book_config(choice: str | None = None, root: Path | None = None) -> RunConfig:
    """The run every chapter shows: synthetic by default, else what CASESTUDY_BOOK_DATA names."""
    choice = (choice if choice is not None else os.environ.get(DATA_VARIABLE, "")).strip() or "synthetic"
    root = Path(root) if root else book_root()
    runs = str(root / "runs")
    if choice == "synthetic":  # its own data root, so `make demo`'s synthetic set is left alone
        return load_config("book", data_root=str(root / "data" / "book"), runs_root=runs)
    if choice == "course":  # the layout `casestudy data fetch` writes; its cache is shared
        return load_config("course", name="book-course", data=str(root / "data" / "raw"),
                           data_root=str(root / "data"), runs_root=runs)
    folder = Path(choice).expanduser().resolve()
    if not folder.is_dir():
        raise CaseStudyError(f"{DATA_VARIABLE}={choice}: not a folder; give a folder with real/ and "
                             f"fake/, 'course' or nothing (synthetic)")
    return load_config("sample", name=f"book-{data.dataset_name(str(folder))}", data=str(folder),
                       data_root=str(root / "data"), runs_root=runs)


def is_trained_as(config: RunConfig) -> bool:
    """Whether the run folder holds a model trained on this data with these run settings."""
    run = RunFolder.of(config)
    if not run.is_trained():
        return False
    try:
        saved = run.saved_config()
    except CaseStudyError:
        return False
    return not contradictions(saved, config, run_settings())


def has_run(config: RunConfig, stage: str) -> bool:
    """Whether the stage's output is there and belongs to this data and these settings."""
    if stage == "train":
        return is_trained_as(config)
    out = config.run_dir / stages.stage(stage).output
    if not out.is_file():
        return False
    if stage == "eda":  # measured after the dataset was last (re)indexed
        index = data.prepare_for(config, progress=False)
        return out.stat().st_mtime >= index.stat().st_mtime
    return True  # training afresh deletes the later stages' outputs (train.clear_run)


def run_stage(config: RunConfig, stage: str, progress: bool = False) -> None:
    """Run one stage of the package with the book's run settings (training replaces a stale run)."""
    extra = {"overwrite": True} if stage == "train" else {}
    stages.stage(stage).run(config, progress, **extra)


def ensure(config: RunConfig, *names: str, progress: bool = False) -> list[str]:
    """Run, in order, each of `names` and what they need whose outputs are missing; name them."""
    ran = []
    for stage in stages.with_needs(*names):
        if not has_run(config, stage):
            run_stage(config, stage, progress)
            ran.append(stage)
    return ran


# ---------------------------------------------------------------- showing results in a page


def figure(config: RunConfig, name: str, width: int | None = None):
    """A figure the run wrote under runs/<name>/figures, for display in a page."""
    from IPython.display import Image

    path = config.run_dir / "figures" / name
    if not path.is_file():
        raise CaseStudyError(f"{path} is missing: run the stage that writes it first")
    return Image(filename=str(path), width=width)


def show(fig, dpi: int = 110):
    """A matplotlib figure as a PNG for a page (the package draws headless, with Agg), closed."""
    import io

    from IPython.display import Image

    from casestudy.plots import plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buffer.getvalue(), format="png")


def show_examples(index, per_class: int = 6, seed: int = 0, enlarge: int = 0):
    """A row of images of each class from a dataset index, titled with their label number.

    enlarge > 0 shows every image at that many screen pixels per image pixel (nearest
    neighbour), so that a faint trace is neither hidden nor smoothed by the page.
    """
    from casestudy.plots import plt

    chosen = {label: index[(index.label == label) & (index.split != "")] for label in data.LABELS.values()}
    chosen = {label: rows.sample(n=min(per_class, len(rows)), random_state=seed)
              for label, rows in chosen.items()}
    side = 1.6 if not enlarge else enlarge * int(max(index.width.max(), 1)) / 100  # inches at dpi 100
    fig, axes = plt.subplots(2, per_class, figsize=(side * per_class, side * 2 + 0.6), squeeze=False,
                             dpi=100 if enlarge else None)
    for row, (name, label) in enumerate(data.LABELS.items()):
        for ax, path in zip(axes[row], chosen[label].path):
            ax.imshow(data.read_rgb(path), interpolation="nearest" if enlarge else "antialiased")
        for ax in axes[row]:
            ax.axis("off")
        axes[row][0].set_title(f"{name} (label {label})" + (f", {enlarge}x" if enlarge else ""),
                               loc="left", fontsize=9)
    if enlarge:
        fig.subplots_adjust(left=0, right=1, bottom=0, top=0.9, wspace=0.05, hspace=0.25)
    return show(fig, dpi=100 if enlarge else 110)


def report_html(config: RunConfig):
    """The run's report.md as HTML: figures inlined, links to the run's files shown as names."""
    from IPython.display import HTML
    from markdown_it import MarkdownIt

    run = config.run_dir
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse((run / "report.md").read_text())
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":  # (figures/x.png) -> data: URI, so the page is self-contained
                png = (run / child.attrs["src"]).read_bytes()
                child.attrs["src"] = "data:image/png;base64," + base64.b64encode(png).decode()
                child.attrs["style"] = "max-width: 100%"
        if token.children:  # links to the run's files: keep their text, the files stay in runs/
            token.children = [c for c in token.children if c.type not in ("link_open", "link_close")]
    return HTML(md.renderer.render(tokens, md.options, {}))
