"""Time the original course pipeline against this package's, on the same machine and data.

    python benchmarks/bench_pipeline.py [--data data/raw] [--size 224] [--generate 10000]
                                        [--batches 0] [--batch-size 256] [--compile]

1. The original: every epoch decodes each file with PIL and applies torchvision
   transforms (Resize, RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader with
   4 workers, batch 32, fp32 ResNet18 with Adam at lr 1e-4.
2. This package: decode once into the uint8 cache (`casestudy data cache`), then train
   from it with augmentation on the device, bf16 autocast and channels_last on CUDA.

Where --data is absent the script writes --generate 1024 x 1024 PNGs per class (the
course data's format, enlarged from the faces sample when it is there) so that decoding
costs what it would. --batches N times N batches of each pipeline instead of a whole
epoch (for slow CPUs); the epoch time is then extrapolated and the table says so.
Prints a markdown table; copy it into benchmarks/RESULTS.md with the date and machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from casestudy import data, embed, explain, feed, files, train
from casestudy.config import RunConfig
from casestudy.evaluate import predict
from casestudy.model import build_model, normalize
from casestudy.runtime import autocast, memory_format, pick_device

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared/data/faces-140k-sample"


# ---------------------------------------------------------------- data


def write_png(job: tuple[str | None, str, int]) -> None:
    source, target, seed = job
    if source:
        img = Image.open(source).convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
    else:  # smooth random colour fields, about as compressible as a photo
        small = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((1024, 1024), Image.Resampling.BICUBIC)
    img.save(target)


def make_course_like(folder: Path, per_class: int) -> Path:
    """Write per_class 1024 x 1024 PNGs into folder/real and folder/fake (once)."""
    jobs = []
    for name in data.LABELS:
        (folder / name).mkdir(parents=True, exist_ok=True)
        sources = sorted((SAMPLE / name).iterdir()) if (SAMPLE / name).is_dir() else []
        for i in range(per_class):
            target = folder / name / f"{i:05d}.png"
            if not target.exists():
                source = str(sources[i % len(sources)]) if sources else None
                jobs.append((source, str(target), i + (0 if name == "real" else 10**6)))
    list(files.parallel_map(write_png, jobs, "write 1024 px PNGs", "img"))
    return folder


# ---------------------------------------------------------------- 1. the original pipeline


class FolderImages(Dataset):
    """What the course notebooks did: open the file with PIL on every access."""

    def __init__(self, paths: list[str], labels: list[int], transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(Image.open(self.paths[i]).convert("RGB")), self.labels[i]


def original_loader(rows, size: int, augment: bool) -> DataLoader:
    steps = [transforms.Resize((size, size))] + ([transforms.RandomHorizontalFlip()] if augment else [])
    steps += [transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    dataset = FolderImages(rows.path.tolist(), rows.label.tolist(), transforms.Compose(steps))
    return DataLoader(dataset, batch_size=32, shuffle=augment, num_workers=4, persistent_workers=False)


def time_original(index, size: int, device: torch.device, max_batches: int) -> dict:
    model = build_model("none").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    train_rows = index[index.split == "train"]
    model.train()
    seen, begin = 0, None
    for i, (x, y) in enumerate(original_loader(train_rows, size, augment=True)):
        if i == 2:  # the first batches pay for starting the workers
            sync(device)
            begin, seen = time.perf_counter(), 0
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
        if max_batches and i + 1 >= max_batches + 2:
            break
    sync(device)
    train_ips = seen / (time.perf_counter() - begin)
    test_rows = index[index.split == "test"].head(max_batches * 32 if max_batches else None)
    model.eval()
    begin, n = time.perf_counter(), 0
    with torch.inference_mode():
        for x, _ in original_loader(test_rows, size, augment=False):
            model(x.to(device))
            n += len(x)
    sync(device)
    return {"train img/s": train_ips, "epoch s": len(train_rows) / train_ips,
            "eval img/s": n / (time.perf_counter() - begin)}


# ---------------------------------------------------------------- 2. this package


def time_package(config: RunConfig, device: torch.device, max_batches: int) -> dict:
    cache = data.dataset_dir(config.data, config.data_root) / "cache" / str(config.image_size)
    shutil.rmtree(cache, ignore_errors=True)
    begin = time.perf_counter()
    stores = data.build_cache(config, progress=True)
    cache_s = time.perf_counter() - begin
    n_cached = sum(s["images"] for s in stores["splits"].values())
    one_core = single_core_decode_rate(config)
    (train_x, train_y, _), (test_x, test_y, _) = data.load_for_run(config, "train", "test", progress=False)
    if max_batches:
        keep = min(len(train_x), max_batches * config.batch_size)
        train_x, train_y = train_x[:keep], train_y[:keep]
    train_x = feed.place(train_x, device)
    net = build_model("none").to(device, memory_format=memory_format(device))
    model = torch.compile(net) if config.compile else net
    optimizer, scheduler = train.make_optimizer(net, config, 10**6, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train.train_one_epoch(model, optimizer, scheduler, train_x[: 4 * config.batch_size],
                          train_y[: 4 * config.batch_size], config, device)  # warm-up (and compile)
    sync(device)
    begin = time.perf_counter()
    train.train_one_epoch(model, optimizer, scheduler, train_x, train_y, config, device, progress=True)
    sync(device)
    epoch_s = time.perf_counter() - begin
    busy = None  # the share of the epoch the GPU would need anyway, with the data already there
    if device.type == "cuda":
        busy = min(1.0, compute_only_seconds(model, optimizer, scheduler, train_x, train_y, config, device)
                   / epoch_s)
    test_x = test_x[: max_batches * config.batch_size] if max_batches else test_x
    begin = time.perf_counter()
    predict(net, test_x, device, batch_size=train.eval_batch_size(config))
    sync(device)
    eval_ips = len(test_x) / (time.perf_counter() - begin)
    embeddings, _ = embed.extract_embeddings(net, test_x[:2000], device)
    begin = time.perf_counter()
    embed.tsne_2d(embeddings, seed=0)
    tsne_s = time.perf_counter() - begin
    cam_x = test_x[:64]
    begin = time.perf_counter()
    explain.grad_cam(net, cam_x, [1] * len(cam_x), device)
    sync(device)
    cam_ips = len(cam_x) / (time.perf_counter() - begin)
    n_train = int((data.load_index(data.dataset_dir(config.data, config.data_root) / "index.csv").split
                   == "train").sum())
    return {"cache img/s": n_cached / cache_s, "cache img/s per core": n_cached / cache_s / os.cpu_count(),
            "one-core decode img/s": one_core, "cache share of cores x one core":
            n_cached / cache_s / (one_core * os.cpu_count()),
            "train img/s": len(train_x) / epoch_s, "epoch s": n_train / (len(train_x) / epoch_s),
            "busy": busy, "eval img/s": eval_ips, "t-SNE s": tsne_s,
            "t-SNE points": len(embeddings), "Grad-CAM img/s": cam_ips,
            "peak GPU GiB": peak_memory_gib(device)}


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def single_core_decode_rate(config: RunConfig, n: int = 64) -> float:
    """Images per second that one core decodes and resizes (the cache build's ideal is cores x this)."""
    index = data.load_index(data.dataset_dir(config.data, config.data_root) / "index.csv")
    paths = index[index.split != ""].path.head(n).tolist()
    begin = time.perf_counter()
    data.load_images(paths, config.image_size, progress=False, workers=1)
    return len(paths) / (time.perf_counter() - begin)


def compute_only_seconds(model, optimizer, scheduler, images, labels, config, device) -> float:
    """Time the same number of steps on one batch already on the device: the data path's floor."""
    x = images[: config.batch_size].to(device)
    y = labels[: config.batch_size].to(device)
    steps = -(-len(images) // config.batch_size)
    repeated_x, repeated_y = x.repeat(steps, 1, 1, 1), y.repeat(steps)
    order = torch.arange(len(repeated_x))
    sync(device)
    begin = time.perf_counter()
    model.train()
    for xb, yb in feed.batches(repeated_x, repeated_y, order, config.batch_size, device):
        xb = train.augment(xb.float().div_(255), xb.shape[-1], config.crop_padding, config.jitter,
                           config.flip)
        with autocast(device):
            loss = F.cross_entropy(model(normalize(xb)), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    sync(device)
    return time.perf_counter() - begin


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- the table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/raw", help="a folder with real/ and fake/")
    parser.add_argument("--generate", type=int, default=10000, help="PNGs per class when --data is absent")
    parser.add_argument("--work", default="/tmp/casestudy-bench-pipeline")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batches", type=int, default=0, help="time this many batches (0: an epoch)")
    parser.add_argument("--skip-original", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    folder = Path(args.data)
    if not folder.is_dir():
        folder = make_course_like(Path(args.work) / "course-like", args.generate)
    device = pick_device(args.device)
    config = RunConfig(name="bench", data=str(folder), data_root=str(Path(args.work) / "data"),
                       runs_root=str(Path(args.work) / "runs"), image_size=args.size,
                       batch_size=args.batch_size, lr=args.lr, device=str(device), compile=args.compile)
    begin = time.perf_counter()
    index = data.load_index(data.prepare_for(config, progress=True))
    index_s = time.perf_counter() - begin
    ours = time_package(config, device, args.batches)
    original = {} if args.skip_original else time_original(index, args.size, device, args.batches)
    report(args, folder, device, index, index_s, original, ours)


def report(args, folder, device, index, index_s, original, ours) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    partial = f", timed over {args.batches} batches and extrapolated" if args.batches else ""
    print(f"\n{name}; data {folder} ({(index.split != '').sum()} images, "
          f"{(index.split == 'train').sum()} train); {args.size} px{partial}; "
          f"index built in {index_s:.0f} s\n")
    print("| measure | original | casestudy | casestudy / original |")
    print("| --- | ---: | ---: | ---: |")

    def row(label, key, fmt="{:.1f}", higher_better=True):
        a, b = original.get(key), ours.get(key)
        cells = [fmt.format(v) if v is not None else "n/a" for v in (a, b)]
        ratio = "" if a is None or b is None else f"{(b / a if higher_better else a / b):.1f}x"
        print(f"| {label} | {cells[0]} | {cells[1]} | {ratio} |")

    row("cache build, img/s (decode once)", "cache img/s")
    row(f"cache build, img/s per core ({os.cpu_count()} cores)", "cache img/s per core")
    row("decode + resize on one core, img/s", "one-core decode img/s")
    row("cache build / (cores x one core)", "cache share of cores x one core", "{:.2f}")
    row("training, img/s", "train img/s")
    row("epoch, s (ratio: original / casestudy)", "epoch s", higher_better=False)
    row("GPU busy share of the epoch", "busy", "{:.2f}")
    row("evaluation, img/s", "eval img/s")
    row(f"t-SNE of {ours['t-SNE points']} x 512, s", "t-SNE s")
    row("Grad-CAM, img/s", "Grad-CAM img/s")
    row("peak GPU memory, GiB", "peak GPU GiB", "{:.2f}")


if __name__ == "__main__":
    main()
