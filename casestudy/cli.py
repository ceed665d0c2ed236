"""The `casestudy` command: one subcommand per stage, and `run` for all of them.

    casestudy data synthetic | data index --data PATH | data fetch [--dataset course] [--weights imagenet]
    casestudy eda | train | evaluate | tsne | gradcam | report | run   [--config demo] [flags]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from casestudy import CaseStudyError
from casestudy.config import RunConfig, load_config

STAGE_FLAGS = {  # flag -> (type, help); each overrides the RunConfig field of the same name
    "name": (str, "run name: results go to runs/<name>/"),
    "data": (str, "'synthetic' or a folder with real/ and fake/ below it"),
    "data_root": (str, "where datasets, indexes and caches are kept (default data/)"),
    "runs_root": (str, "where run folders are written (default runs/)"),
    "seed": (int, "seed of every random choice"),
    "device": (str, "auto, cpu or cuda"),
    "deterministic": (bool, "deterministic kernels: a run, or a resumed one, repeats exactly (slower)"),
    "image_size": (int, "images are resized to this many pixels square"),
    "train_crop": (int, "train on random crops of this size (0: crop back to --image-size)"),
    "crop_padding": (int, "pad training images by this many pixels before the random crop"),
    "max_per_class": (int, "use at most this many images per class (0: all)"),
    "weights": (str, "none, imagenet or a .pth file"),
    "epochs": (int, "training epochs"),
    "batch_size": (int, "batch size"),
    "lr": (float, "peak learning rate (warm-up, then cosine decay)"),
    "lr_batch": (int, "the batch size --lr was chosen for: scale it by sqrt(batch size / this)"),
    "compile": (bool, "compile the model with torch.compile (slow start, faster epochs on a GPU)"),
    "eda_per_class": (int, "images per class the EDA measures (0: all)"),
    "synthetic_per_class": (int, "synthetic images per class"),
    "synthetic_size": (int, "synthetic image size in pixels"),
}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="demo",
                        help="preset name in casestudy/configs (demo, course) or a .yaml file")
    for flag, (kind, text) in STAGE_FLAGS.items():
        if kind is bool:  # a switch: present turns it on, absent keeps the preset's value
            parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, action="store_const",
                                const=True, help=text)
        else:
            parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, help=text)
    parser.add_argument("--eval-data", dest="eval_data", action="append",
                        help="also evaluate on this dataset folder (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casestudy", description="Who's the Imposter? "
                                     "Detect StyleGAN faces with a ResNet18, stage by stage.")
    sub = parser.add_subparsers(dest="command", required=True)
    data_cmd = sub.add_parser("data", help="make or index a dataset")
    data_sub = data_cmd.add_subparsers(dest="action", required=True)
    add_config_flags(data_sub.add_parser("synthetic", help="make the embedded synthetic dataset"))
    add_config_flags(data_sub.add_parser("index", help="index a folder with real/ and fake/"))
    cache = data_sub.add_parser("cache", help="decode every split once into the uint8 cache",
                                description="Decode and resize every image once, over all CPU cores, "
                                "into data/<dataset>/cache/<size>/ (memory-mapped .npy per split). "
                                "Training, evaluation, t-SNE and Grad-CAM then read from it.")
    add_config_flags(cache)
    cache.add_argument("--size", dest="image_size", type=int, help="same as --image-size")
    fetch = data_sub.add_parser("fetch", help="fetch the course data or the ImageNet weights, verified",
                                description="Fetch what data_manifest.yaml declares, verify every file "
                                "and lay it out under <data-root>/raw/real and /fake; safe to interrupt "
                                "and re-run. Add --weights imagenet for torchvision's ResNet18 weights.")
    add_config_flags(fetch)
    fetch.add_argument("--dataset", help="a collection of the manifest (default course; none with "
                       "only --weights imagenet)")
    fetch.add_argument("--real", type=int, help="real images to fetch (whole folders of 1000)")
    fetch.add_argument("--fake", type=int, help="fake images to fetch (whole zips of 1000)")
    fetch.add_argument("--source", help="drive, http, kaggle or local from the manifest; "
                       "kaggle:OWNER/NAME; or an http(s):// mirror")
    fetch.add_argument("--from", dest="local", metavar="PATH",
                       help="import from a folder or zip you already have (tried first)")
    fetch.add_argument("--dry-run", action="store_true", help="list what would be fetched, and its size")
    train_cmd = sub.add_parser("train", help="train the ResNet18 detector")
    add_config_flags(train_cmd)
    train_cmd.add_argument("--resume", action="store_true", help="continue runs/<name>/last.pt")
    for name, text in (("eda", "explore the data: colour, brightness, texture, spectra"),
                       ("evaluate", "metrics and figures on the test split"),
                       ("tsne", "t-SNE of the test embeddings"),
                       ("gradcam", "Grad-CAM heat maps"),
                       ("report", "write runs/<name>/report.md"),
                       ("run", "every stage in order, then the report")):
        add_config_flags(sub.add_parser(name, help=text))
    for name in ("train", "run"):
        sub.choices[name].add_argument("--overwrite", action="store_true",
                                       help="replace an existing run of the same name")
    return parser


def config_from(args: argparse.Namespace) -> RunConfig:
    overrides = {k: getattr(args, k) for k in (*STAGE_FLAGS, "eval_data")}
    return load_config(args.config, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from(args)
        dispatch(args, config, progress=not args.quiet)
    except CaseStudyError as err:
        print(f"casestudy {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ncasestudy {args.command}: interrupted. Finished epochs are saved; continue with "
              f"`casestudy train --name <name> --resume`.", file=sys.stderr)
        return 130
    return 0


def dispatch(args: argparse.Namespace, config: RunConfig, progress: bool) -> None:
    from casestudy import data, eda, embed, evaluate, explain, report, train  # torch loads here

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command != "train":
        raise CaseStudyError(f"under torchrun only `casestudy train` runs on several processes; "
                             f"run `casestudy {args.command}` without torchrun")

    if args.command == "data":
        if args.action == "fetch":
            from casestudy.download import fetch_data

            if config.weights not in ("none", "imagenet"):
                raise CaseStudyError(f"--weights {config.weights}: only imagenet can be fetched")
            dataset = args.dataset or (None if args.weights == "imagenet" else "course")
            fetch_data(dataset, args.real, args.fake, config.weights == "imagenet", config.data_root,
                       args.source, args.local, args.dry_run, progress)
            return
        if args.action == "cache":
            show_cache(data.build_cache(config, progress))
            return
        if args.action == "index" and config.data == "synthetic":
            raise CaseStudyError("`data index` needs --data FOLDER (a folder with real/ and fake/)")
        if args.action == "synthetic":
            config.data = "synthetic"
        prepare_data(config, progress)
    elif args.command == "eda":
        show_eda(eda.run_eda(config, progress), config)
    elif args.command == "train":
        best = train.train(config, resume=args.resume, overwrite=args.overwrite, progress=progress)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            print(f"best checkpoint: {best}")
    elif args.command == "evaluate":
        show_metrics(evaluate.evaluate(config, progress=progress))
        for other in config.eval_data:
            show_metrics(evaluate.evaluate(config, eval_data=other, progress=progress))
    elif args.command == "tsne":
        print(f"embeddings: {embed.run_tsne(config, progress)}")
    elif args.command == "gradcam":
        for path in explain.run_gradcam(config, progress):
            print(f"figure: {path}")
    elif args.command == "report":
        print(f"report: {report.write_report(config)}")
    elif args.command == "run":
        run_all(config, progress, overwrite=args.overwrite)


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


def run_all(config: RunConfig, progress: bool = True, overwrite: bool = False) -> dict[str, float]:
    """Run every stage in order, print where the results are; return seconds per stage."""
    from casestudy import eda, embed, evaluate, explain, report, train

    started = time.perf_counter()
    stages = [
        ("data", lambda: prepare_data(config, progress)),
        ("eda", lambda: show_eda(eda.run_eda(config, progress), config)),
        ("train", lambda: train.train(config, overwrite=overwrite, progress=progress)),
        ("evaluate", lambda: show_metrics(evaluate.evaluate(config, progress=progress))),
        *[(f"evaluate on {other}", lambda o=other: show_metrics(
            evaluate.evaluate(config, eval_data=o, progress=progress)))
          for other in config.eval_data],
        ("tsne", lambda: embed.run_tsne(config, progress)),
        ("gradcam", lambda: explain.run_gradcam(config, progress)),
        ("report", lambda: report.write_report(config)),
    ]
    seconds = {}
    for name, stage in stages:
        print(f"== {name}", flush=True)
        begin = time.perf_counter()
        stage()
        seconds[name] = time.perf_counter() - begin
    timing = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    print(f"done in {time.perf_counter() - started:.0f} s ({timing}).\n"
          f"Results: {config.run_dir}/  report: {config.run_dir / 'report.md'}  "
          f"figures: {config.run_dir / 'figures'}/")
    return seconds


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
