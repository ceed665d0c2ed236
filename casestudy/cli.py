"""The `casestudy` command: one subcommand per stage, and `run` for all of them.

    casestudy data synthetic | data index --data PATH | data cache | data fetch [--dataset course]
    casestudy eda | train | evaluate | tsne | gradcam | report | run   [--config demo] [flags]

Each subcommand's flags are generated from the settings declared on RunConfig's fields, and
show the chosen preset's values as defaults. Torch is imported only once a stage runs, so
`--help` and a bad setting answer at once. Every problem a user can cause ends in one line on
stderr and exit status 2; an unexpected one in one line and a saved traceback to report.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from casestudy import CaseStudyError, __version__, stages
from casestudy.config import FIELDS, RunConfig, load_config, preset_values

DEFAULT_PRESET = "demo"
DATA_ACTIONS = {"synthetic": "make the embedded synthetic dataset",
                "index": "index a folder with real/ and fake/",
                "cache": "decode every split once into the uint8 cache",
                "fetch": "fetch the course data or the ImageNet weights, verified"}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to read more), exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def chosen_preset(argv: list[str]) -> str:
    """The --config value in argv, read before parsing so that --help shows its defaults."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return DEFAULT_PRESET


def shown_defaults(preset: str) -> dict:
    try:
        return preset_values(preset)
    except CaseStudyError:  # a bad --config is reported when the command runs, not in --help
        return RunConfig().to_dict()


def add_setting_flags(parser: argparse.ArgumentParser, command: str, defaults: dict,
                      tolerate_others: bool = True) -> None:
    """Add --config, a flag for every setting `command` uses, and --quiet.

    The other settings' flags are accepted without being listed, so one set of flags serves
    every stage: a stage ignores what it does not use, and a stage on a trained run names each
    flag that contradicts the run.
    """
    parser.add_argument("--config", help=f"preset name ({', '.join(preset_names())}) or a .yaml "
                        f"file (default: {DEFAULT_PRESET})")
    for name, f in FIELDS.items():
        shown = command in f.metadata["stages"]
        if not shown and not tolerate_others:
            continue
        flag = f"--{name.replace('_', '-')}"
        text = f"{f.metadata['help']} (default: {format_default(defaults[name])})" if shown \
            else argparse.SUPPRESS
        if f.type == "bool":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=text)
        elif f.type == "list[str]":
            parser.add_argument(flag, dest=name, action="append", metavar="VALUE", help=text)
        else:
            parser.add_argument(flag, dest=name, help=text,
                                metavar={"int": "N", "float": "X"}.get(f.type, name.upper()))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def format_default(value) -> str:
    if isinstance(value, list):
        return " ".join(value) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def preset_names() -> list[str]:
    from casestudy.config import PRESETS

    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    defaults = shown_defaults(chosen_preset(argv or []))
    parser = OneLineParser(prog="casestudy", description="Who's the Imposter? Detect StyleGAN faces "
                           "with a ResNet18, stage by stage.")
    parser.add_argument("--version", action="version", version=f"casestudy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_cmd = sub.add_parser("data", help="make, index, cache or fetch a dataset")
    data_sub = data_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in DATA_ACTIONS.items():
        add_setting_flags(data_sub.add_parser(action, help=text, description=text), f"data {action}",
                          defaults, tolerate_others=action != "fetch")
    data_sub.choices["cache"].description = (
        "Decode and resize every image once, over all CPU cores, into <data-root>/<dataset>/cache/"
        "<size>/ (memory-mapped .npy per split). Training, evaluation, t-SNE and Grad-CAM then read it.")
    data_sub.choices["cache"].add_argument("--size", dest="image_size", help="same as --image-size")
    add_fetch_flags(data_sub.choices["fetch"])
    for stage in stages.STAGES:
        description = stage.help + (". The data, the split, the image size and every training "
                                    "setting come from the run folder (config.yaml, split.csv); "
                                    "a flag that contradicts them is an error."
                                    if stage.on_trained_run else ".")
        add_setting_flags(sub.add_parser(stage.name, help=stage.help, description=description),
                          stage.name, defaults)
    add_setting_flags(sub.add_parser("run", help="every stage in order, then the report"), "run",
                      defaults)
    sub.choices["train"].add_argument("--resume", action="store_true",
                                      help="continue <runs-root>/<name>/last.pt with its own settings")
    for name in ("train", "run"):
        sub.choices[name].add_argument("--overwrite", action="store_true",
                                       help="replace an existing run of the same name")
    return parser


def add_fetch_flags(fetch: argparse.ArgumentParser) -> None:
    fetch.description = ("Fetch what data_manifest.yaml declares, verify every file and lay it out "
                         "under <data-root>/raw/real and /fake; safe to interrupt and re-run. Add "
                         "--weights imagenet for torchvision's ResNet18 weights.")
    fetch.add_argument("--weights", choices=["none", "imagenet"], help="also fetch these weights")
    fetch.add_argument("--dataset", help="a collection of the manifest (default course; none with "
                       "only --weights imagenet)")
    fetch.add_argument("--real", type=int, help="real images to fetch (whole folders of 1000)")
    fetch.add_argument("--fake", type=int, help="fake images to fetch (whole zips of 1000)")
    fetch.add_argument("--source", help="drive, http, kaggle or local from the manifest; "
                       "kaggle:OWNER/NAME; or an http(s):// mirror")
    fetch.add_argument("--from", dest="local", metavar="PATH",
                       help="import from a folder or zip you already have (tried first)")
    fetch.add_argument("--dry-run", action="store_true", help="list what would be fetched, and its size")


# ---------------------------------------------------------------- settings of a command


def explicit_settings(args: argparse.Namespace) -> set[str]:
    """The settings the user chose: every flag given, and every key of a preset named with --config."""
    chosen = {name for name in FIELDS if getattr(args, name, None) is not None}
    if getattr(args, "config", None):
        from casestudy.config import preset_path, read_yaml

        chosen |= set(read_yaml(preset_path(args.config)))
    return chosen


def config_from(args: argparse.Namespace) -> RunConfig:
    """The command's settings: the preset, then the flags, checked (a bad value is one line)."""
    overrides = {name: getattr(args, name, None) for name in FIELDS}
    return load_config(args.config or DEFAULT_PRESET, **overrides)


def command_name(args: argparse.Namespace) -> str:
    return f"casestudy {args.command}" + (f" {args.action}" if args.command == "data" else "")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    where = command_name(args)
    running = {"stage": None}
    try:
        config = config_from(args)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command != "train":
            raise CaseStudyError(f"under torchrun only `casestudy train` runs on several processes; "
                                 f"run `casestudy {args.command}` without torchrun")
        if args.command in stages.BY_NAME or args.command == "run":
            config = settle_run(args, config)
        running["config"] = config
        dispatch(args, config, not args.quiet, running)
    except CaseStudyError as err:
        return fail(where, str(err))
    except KeyboardInterrupt:
        note = interrupted_note(args, running["stage"], running.get("config"))
        print(f"\n{where}: interrupted; {note}", file=sys.stderr)
        return 130
    except OSError as err:
        return fail(where, describe_os_error(err))
    except MemoryError:
        return fail(where, "out of memory: lower --batch-size or --image-size, or use fewer images")
    except Exception as err:  # noqa: BLE001 - the last resort: one line and a traceback file
        if type(err).__name__ == "OutOfMemoryError":  # torch's, without importing torch here
            return fail(where, "out of GPU memory: lower --batch-size or --image-size")
        saved = save_traceback(where)
        first = str(err).splitlines()[0] if str(err) else ""
        return fail(where, f"unexpected error {type(err).__name__}: {first} -- please report it with "
                    f"the details saved in {saved}", status=1)
    return 0


def fail(where: str, message: str, status: int = 2) -> int:
    print(f"{where}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def describe_os_error(err: OSError) -> str:
    """One line for a file-system failure: what, where, what to do."""
    path = err.filename or "a file"
    if err.errno == errno.ENOSPC:
        return (f"no space left on the device while writing {path}: free some space, or point "
                f"--data-root / --runs-root at another disk, and run again")
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write or read {path} ({err.strerror}): choose a folder you may write with "
                f"--data-root / --runs-root, or fix its permissions")
    if err.errno == errno.ENOENT:
        return f"{path} does not exist ({err.strerror})"
    return f"{err.strerror or err} ({path})"


def save_traceback(where: str) -> Path:
    """Write the current exception's traceback to a file; return its path."""
    text = f"{where} (casestudy {__version__}, Python {sys.version.split()[0]})\n{traceback.format_exc()}"
    for folder in (None, Path.cwd(), Path.home()):  # the temporary folder, else here, else home
        try:
            with tempfile.NamedTemporaryFile("w", prefix="casestudy-error-", suffix=".txt", dir=folder,
                                             delete=False) as file:
                file.write(text)
            return Path(file.name)
        except OSError:
            continue
    return Path("(nowhere: no folder could be written)")


def interrupted_note(args: argparse.Namespace, current: str | None, config: RunConfig | None = None
                     ) -> str:
    """What Ctrl-C kept, and what to run next, for the stage that was running."""
    name = config.name if config else getattr(args, "name", None) or "<name>"
    if args.command == "data":
        return "nothing half-written was kept (verified files and finished indexes stay); run it again"
    stage = stages.BY_NAME.get(current or args.command)
    if stage is None:
        return f"nothing half-written was kept; run `casestudy {args.command}` again"
    runs_root = config.runs_root if config else getattr(args, "runs_root", None) or "runs"
    last = Path(runs_root) / name / "last.pt"
    note = stage.interrupted.format(name=name, last=last)
    if stage.name == "train" and not last.is_file():
        note = (f"no epoch had finished, so no checkpoint was kept; run `casestudy train --name {name}` "
                f"again")
    if args.command == "run":
        later = stages.NAMES[stages.NAMES.index(stage.name) + 1:]
        note += f"; then run the later stages: {', '.join(later)}" if later else ""
    return note


def settle_run(args: argparse.Namespace, config: RunConfig) -> RunConfig:
    """For a stage on a trained run: the run's own settings, refusing flags that contradict them."""
    from casestudy.runs import RunFolder

    stage = stages.BY_NAME.get(args.command)
    run = RunFolder.of(config)
    resuming = args.command == "train" and args.resume
    if resuming and args.overwrite:
        raise CaseStudyError("--resume continues the run and --overwrite replaces it: choose one")
    untrained_report = args.command == "report" and not run.is_trained()  # the EDA alone: its settings
    if untrained_report and not run.eda_summary.is_file():
        raise CaseStudyError(f"run {run.name!r} has nothing to report: {run.best} and {run.eda_summary} do "
                             f"not exist; run `casestudy eda --name {run.name}` or `casestudy train "
                             f"--name {run.name}` first")
    if (stage is not None and stage.on_trained_run and not untrained_report) or resuming:
        if resuming and not run.last.is_file():
            raise CaseStudyError(f"nothing to resume: {run.last} does not exist; train without --resume")
        return run.trained_config(config, explicit_settings(args))
    return config


# ---------------------------------------------------------------- running


def dispatch(args: argparse.Namespace, config: RunConfig, progress: bool, running: dict) -> None:
    if args.command == "data":
        run_data_action(args, config, progress)
    elif args.command == "run":
        run_all(config, progress, overwrite=args.overwrite, running=running)
    else:
        extra = {"resume": args.resume, "overwrite": args.overwrite} if args.command == "train" else {}
        running["stage"] = args.command
        show(args.command, stages.BY_NAME[args.command].run(config, progress, **extra), config)


def run_data_action(args: argparse.Namespace, config: RunConfig, progress: bool) -> None:
    from casestudy import data

    if args.action == "fetch":
        from casestudy.download import fetch_data

        dataset = args.dataset or (None if args.weights == "imagenet" else "course")
        fetch_data(dataset, args.real, args.fake, args.weights == "imagenet", config.data_root,
                   args.source, args.local, args.dry_run, progress)
    elif args.action == "cache":
        show_cache(data.build_cache(config, progress))
    else:
        if args.action == "index" and config.data == "synthetic":
            raise CaseStudyError("`data index` needs --data FOLDER (a folder with real/ and fake/)")
        if args.action == "synthetic":
            config.data = "synthetic"
        prepare_data(config, progress)


def prepare_data(config: RunConfig, progress: bool = True) -> None:
    """Make or index the dataset, then show its balance, its file counts and the skipped files."""
    from casestudy import data

    path = data.prepare_for(config, progress=progress)
    index = data.load_index(path)
    print(data.summarize(index).to_string())
    print(data.describe_tally(data.tally(index)))
    skipped = data.skipped_files(index)
    for file, why in skipped[:data.LIST_SKIPPED]:
        print(f"skipped {file}: {why}")
    if len(skipped) > data.LIST_SKIPPED:
        print(f"... and {len(skipped) - data.LIST_SKIPPED} more skipped: see the status column of the index")
    print(f"index: {path}")


def run_all(config: RunConfig, progress: bool = True, overwrite: bool = False,
            running: dict | None = None) -> dict[str, float]:
    """Run every stage in order, print where the results are; return seconds per stage."""
    from casestudy.runs import RunFolder

    running = running if running is not None else {}
    started, seconds = time.perf_counter(), {}
    run = RunFolder.of(config)
    with run.lock("casestudy run"):
        if run.last.exists() and not overwrite:  # refuse before the EDA replaces anything
            raise CaseStudyError(f"{run.path} already holds a trained run: replace it with --overwrite, "
                                 f"or pick another --name")
        for name in ["data", *stages.NAMES]:
            print(f"== {name}", flush=True)
            running["stage"], begin = name, time.perf_counter()
            if name == "data":
                prepare_data(config, progress)
            else:
                extra = {"overwrite": overwrite} if name == "train" else {}
                show(name, stages.BY_NAME[name].run(config, progress, **extra), config)
            seconds[name] = time.perf_counter() - begin
    timing = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    print(f"done in {time.perf_counter() - started:.0f} s ({timing}).\n"
          f"Results: {run.path}/  report: {run.report}  figures: {run.figures}/")
    return seconds


# ---------------------------------------------------------------- showing results


def show(stage: str, result, config: RunConfig) -> None:
    if stage == "eda":
        show_eda(result, config)
    elif stage == "train":
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            print(f"best checkpoint: {result}")
    elif stage == "evaluate":
        for metrics in result:
            show_metrics(metrics)
    elif stage == "tsne":
        print(f"embeddings: {result}")
    elif stage == "gradcam":
        for path in result:
            print(f"figure: {path}")
    elif stage == "report":
        print(f"report: {result}")


def show_cache(stores: dict) -> None:
    for split, store in stores["splits"].items():
        print(f"{split}: {store['images']} images, {store['bytes'] / 2**20:.0f} MiB, "
              f"{store['seconds']:.1f} s")
    print(f"cache: {stores['folder']}/ (rebuilt when the images or the size change)")


def show_eda(summary: dict, config: RunConfig) -> None:
    from casestudy import data

    print(f"data: {data.describe_tally(summary['files'])}")
    for question, answer in summary["answers"].items():
        print(f"{question}: {answer}")
    for path, reason in summary["skipped"].items():
        print(f"skipped {path}: {reason}")
    print(f"EDA in {summary['seconds']:.0f} s: {config.run_dir / 'eda_summary.json'}, "
          f"{config.run_dir / 'eda.csv'}, figures {config.run_dir / 'figures'}/eda_*.png")


def show_metrics(m: dict) -> None:
    auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
    print(f"{m['dataset']} ({m['split']}, n={m['n']}): accuracy {m['accuracy']:.3f}, "
          f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}, "
          f"ROC-AUC {auc}  (positive = fake)")
