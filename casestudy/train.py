"""Train the detector: augment the training split, fit ResNet18, validate every epoch.

Book chapter 03_train. Checkpoints hold the model, optimiser, scheduler, epoch, config,
history and RNG state, so `--resume` continues exactly where a run stopped.
"""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torchvision.ops import roi_align
from tqdm import tqdm

from casestudy import CaseStudyError, data, feed, files, plots, stages
from casestudy.config import RunConfig, from_dict, save_config
from casestudy.model import build_model, normalize, read_checkpoint, to_unit
from casestudy.runs import RunFolder
from casestudy.runtime import (
    autocast,
    barrier,
    close_distributed,
    init_distributed,
    memory_format,
    rng_states,
    seed_everything,
    set_rng_state,
)


def augment(x: torch.Tensor, crop: int, padding: int = 0, jitter: float = 0.0,
            flip: bool = True, padding_mode: str = "constant", scale_min: float = 0.0
            ) -> torch.Tensor:
    """Augment a batch, each image its own draw: (B, 3, H, W) in [0, 1] -> (B, 3, crop, crop).

    The course's transforms, batched: padding (zeros, or "reflect") then a random crop, a
    random horizontal flip, and a small brightness / contrast / saturation jitter. With
    scale_min > 0 the crop is instead a random-resized crop (torchvision's
    RandomResizedCrop: area fraction in [scale_min, 1], aspect ratio in [3/4, 4/3]).
    """
    b, _, h, w = x.shape
    if scale_min:
        x = random_resized_crop(x, crop, scale_min)
    else:
        if padding:
            x = F.pad(x, (padding,) * 4, mode=padding_mode)
        window = torch.arange(crop)
        rows = (torch.randint(0, h + 2 * padding - crop + 1, (b, 1)) + window).to(x.device)  # (B, crop)
        cols = (torch.randint(0, w + 2 * padding - crop + 1, (b, 1)) + window).to(x.device)
        batch = torch.arange(b, device=x.device).view(b, 1, 1)
        x = x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, 3, crop, crop)
    if flip:
        flips = torch.rand(b, device=x.device) < 0.5
        x = torch.where(flips.view(b, 1, 1, 1), x.flip(-1), x)
    if jitter:
        def factor():  # (B, 1, 1, 1) uniform in [1 - jitter, 1 + jitter]
            return 1 + jitter * (2 * torch.rand(b, 1, 1, 1, device=x.device) - 1)

        x = x * factor()  # brightness
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor() + mean  # contrast
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        x = (x - grey) * factor() + grey  # saturation
    return x.clamp(0, 1)


def random_resized_crop(x: torch.Tensor, size: int, scale_min: float) -> torch.Tensor:
    """Cut a random box from each image and resize it: (B, 3, H, W) -> (B, 3, size, size)."""
    b, _, h, w = x.shape
    area = torch.empty(b).uniform_(scale_min, 1.0)
    ratio = torch.exp(torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3)))
    bw = (w * torch.sqrt(area * ratio)).clamp(max=w)
    bh = (h * torch.sqrt(area / ratio)).clamp(max=h)
    x0 = torch.rand(b) * (w - bw)
    y0 = torch.rand(b) * (h - bh)
    boxes = torch.stack([torch.arange(b, dtype=torch.float32), x0, y0, x0 + bw, y0 + bh], 1)
    return roi_align(x, boxes.to(x.device, x.dtype), output_size=size, aligned=True,
                     sampling_ratio=2)


def train_one_epoch(model: nn.Module, optimizer, scheduler, images: torch.Tensor,
                    labels: torch.Tensor, config: RunConfig, device: torch.device,
                    epoch: int = 0, progress: bool = False, rank: int = 0, world: int = 1) -> dict:
    """Run one pass over the training split (this rank's shard); return mean loss and accuracy.

    A loss that turns NaN or infinite stops training with a CaseStudyError naming the first
    such step, before anything of this epoch is saved. It is noticed at the end of the epoch,
    so that no step waits for the GPU to report its loss.
    """
    model.train()
    crop = config.train_crop or images.shape[-1]
    total_loss = torch.zeros((), device=device)  # summed on the device: no sync per step
    correct = torch.zeros((), device=device, dtype=torch.long)
    order = feed.epoch_order(len(images), config.seed, epoch, rank=rank, world=world)
    batch_size = max(2, config.batch_size // world)
    if len(order) % batch_size == 1:  # BatchNorm cannot train on a batch of one: leave it out
        order = order[:-1]
    n_steps = -(-len(order) // batch_size)
    first_bad = torch.tensor(n_steps, device=device)  # first step with a non-finite loss, if any
    bad_loss = torch.zeros((), device=device)
    steps = tqdm(feed.batches(images, labels, order, batch_size, device), total=n_steps,
                 desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False, disable=not progress)
    for step, (images_u8, y) in enumerate(steps):
        x = augment(to_unit(images_u8, device), crop, config.crop_padding, config.jitter,
                    config.flip, config.padding_mode, config.scale_min)
        with autocast(device):
            logits = model(normalize(x))  # (B, 2)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        newly_bad = ~torch.isfinite(loss.detach()) & (first_bad == n_steps)
        bad_loss = torch.where(newly_bad, loss.detach().float(), bad_loss)
        first_bad = torch.where(newly_bad, step, first_bad)
    sums = torch.stack([total_loss.float(), correct.float(), torch.tensor(float(len(order)), device=device)])
    if world > 1:
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(first_bad, op=torch.distributed.ReduceOp.MIN)
    if first_bad.item() < n_steps:
        value = bad_loss.item()  # 0 on a rank that saw only finite losses
        kept = f"{RunFolder.of(config).last} keeps epoch {epoch}" if epoch else "nothing was saved"
        raise CaseStudyError(
            f"the training loss became {value if not math.isfinite(value) else 'NaN or infinite'} at "
            f"epoch {epoch + 1}, step {first_bad.item() + 1} of {n_steps}; training stopped ({kept}): "
            f"lower --lr (now {scaled_lr(config):g}) or check the data, then train again with --overwrite")
    loss_sum, n_correct, seen = sums.tolist()
    return {"loss": loss_sum / seen, "acc": n_correct / seen}


@torch.inference_mode()
def evaluate_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  device: torch.device, batch_size: int = 256) -> dict:
    """Return mean loss and accuracy on un-augmented images (validation)."""
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in feed.in_order(images, batch_size, device, labels):
        with autocast(device):
            logits = model(x).float()
        total_loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    return {"loss": total_loss.item() / len(images), "acc": correct.item() / len(images)}


def scaled_lr(config: RunConfig) -> float:
    """The peak learning rate for this batch: lr, scaled by sqrt(batch_size / lr_batch) if set.

    The square-root rule suits Adam-type optimisers when the batch grows (e.g. on a GPU).
    """
    return config.lr * math.sqrt(config.batch_size / config.lr_batch) if config.lr_batch else config.lr


def make_optimizer(model: nn.Module, config: RunConfig, steps: int, device: torch.device):
    optimizer = torch.optim.AdamW(model.parameters(), lr=scaled_lr(config),
                                  weight_decay=config.weight_decay,
                                  fused=True)
    warmup = max(1, steps // 5)

    def warmup_then_cosine(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step / steps, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_cosine)
    return optimizer, scheduler


def save_checkpoint(path: Path, **state) -> None:
    """Write a checkpoint atomically: an interrupted save never replaces a good file.

    It is serialised in memory first: torch.save turns a failing write (a full disk) into a
    RuntimeError without its cause, while a plain write raises the OSError that says why.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        with files.atomic_write(path) as file:
            file.write(buffer.getbuffer())
    except OSError as err:
        if err.filename:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from None


def load_data(config: RunConfig, progress: bool = True):
    """Index the dataset if needed and return its train and val splits as uint8 tensors."""
    return data.load_for_run(config, "train", "val", progress=progress)


def train(config: RunConfig, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> Path:
    """Train a detector into runs/<name>/; return the path of its best checkpoint.

    An existing run is never replaced by accident: continue it with resume, or start
    afresh with overwrite (which clears its old results so nothing mixes). Under
    torchrun every rank trains on its shard of each epoch (DistributedDataParallel);
    only rank 0 writes.
    """
    rank, world, device = init_distributed(config.device)
    try:
        with RunFolder.of(config).lock("casestudy train"):  # rank 0 alone takes it
            return fit(config, resume, overwrite, progress and rank == 0, rank, world, device)
    finally:
        close_distributed(world)


def fit(config: RunConfig, resume: bool, overwrite: bool, progress: bool, rank: int, world: int,
        device: torch.device) -> Path:
    """Train on this process's device and shard; rank 0 alone writes the run folder."""
    run, main = RunFolder.of(config), rank == 0
    run_dir = run.path
    if resume:
        config = resumed_config(config)
    elif run.last.exists() and main:
        if not overwrite:
            raise CaseStudyError(f"{run_dir} already holds a trained run: continue it with --resume, "
                                 f"replace it with --overwrite, or pick another --name")
        clear_run(run_dir)
    seed_everything(config.seed + rank, config.deterministic)
    if not main:
        barrier(world)  # rank 0 indexes, splits and caches the data first
    if config.weights not in ("none", "imagenet") and not Path(config.weights).is_file():
        raise CaseStudyError(f"--weights {config.weights}: no such file; use none, imagenet or a .pth path")
    if main and not resume:
        index_path = data.prepare_for(config, progress=progress)
        run.write_split(data.load_index(index_path), index_path.parent)
    try:
        (train_x, train_y, _), (val_x, val_y, _) = run.load_images(config, "train", "val",
                                                                  progress=progress)
        if len(train_x) < 2 * world:
            raise CaseStudyError(f"the train split of {config.data} has {len(train_x)} image(s): a "
                                 f"training batch needs at least 2; index more images")
    except BaseException:
        if main and not resume:  # no run was started: leave no split.csv of a run that never was
            run.split.unlink(missing_ok=True)
        raise
    if main:
        barrier(world)
    train_x, val_x = feed.place(train_x, device), feed.place(val_x, device)
    net = build_model(config.weights).to(device, memory_format=memory_format(device))
    model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None
                                    ) if world > 1 else net
    model = torch.compile(model) if config.compile else model
    steps_per_epoch = math.ceil(len(train_x) // world / max(2, config.batch_size // world))
    optimizer, scheduler = make_optimizer(net, config, steps_per_epoch * config.epochs, device)
    history, start, best_acc = [], 0, -1.0
    if resume:
        last = read_last(run_dir)
        if last["epoch"] + 1 >= config.epochs:  # before anything is rewritten
            raise CaseStudyError(f"nothing to resume: run {config.name!r} finished its {config.epochs} "
                                 f"epoch(s); evaluate it, or train a longer run with another --name")
        net.load_state_dict(last["model"])
        optimizer.load_state_dict(last["optimizer"])
        scheduler.load_state_dict(last["scheduler"])
        history, start, best_acc = last["history"], last["epoch"] + 1, last["best_val_acc"]
        states = last.get("rng_ranks") or [last["rng"]]  # each rank continues its own generators
        set_rng_state(states[rank] if rank < len(states) else states[0])
        if main:
            print(f"resuming {run_dir} at epoch {start + 1}/{config.epochs}")
            write_history(history, run_dir, config.data)  # history.csv matches last.pt again
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run.config)
        for partial in (*run_dir.glob(f".{run.best.name}.*.tmp"), *run_dir.glob(f".{run.last.name}.*.tmp")):
            partial.unlink()  # a save that a kill interrupted (see files.atomic_write)
    epochs = tqdm(range(start, config.epochs), desc="train", unit="epoch", disable=not progress,
                  initial=start, total=config.epochs)
    for epoch in epochs:
        trained = train_one_epoch(model, optimizer, scheduler, train_x, train_y, config, device, epoch,
                                  progress, rank, world)
        val = evaluate_loss(net, val_x, val_y, device, eval_batch_size(config))
        history.append({"epoch": epoch + 1, "train_loss": trained["loss"], "train_acc": trained["acc"],
                        "val_loss": val["loss"], "val_acc": val["acc"],
                        "lr": scheduler.get_last_lr()[0]})
        epochs.set_postfix(train_acc=f"{trained['acc']:.3f}", val_acc=f"{val['acc']:.3f}")
        rngs = rng_states(world)
        if not main:
            continue
        state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch, "config": config.to_dict(),
                 "history": history, "rng": rngs[0], "rng_ranks": rngs}
        if val["acc"] > best_acc:
            best_acc = val["acc"]
            save_checkpoint(run.best, **state, best_val_acc=best_acc)
        save_checkpoint(run.last, **state, best_val_acc=best_acc)
        write_history(history, run_dir, config.data)
    return run.best


def eval_batch_size(config: RunConfig) -> int:
    """Inference needs no gradients: twice the training batch fits."""
    return max(64, 2 * config.batch_size)


def clear_run(run_dir: Path) -> None:
    """Remove a previous run's model and everything made from it (not the EDA) before training afresh."""
    for pattern in stages.model_outputs():
        for path in Path(run_dir).glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def resumed_config(config: RunConfig) -> RunConfig:
    """The settings of the run to resume: its own; config may differ only in place and stage settings."""
    run = RunFolder.of(config)
    if not run.last.is_file():
        raise CaseStudyError(f"nothing to resume: {run.last} does not exist; train without --resume")
    saved = from_dict({**read_last(run.path)["config"], "runs_root": config.runs_root,
                       "name": config.name})
    return run.trained_config(config, saved=saved)


def read_last(run_dir: Path) -> dict:
    """Read runs/<name>/last.pt, everything a resumed run needs."""
    return read_checkpoint(RunFolder(run_dir).last, f"it cannot be resumed: train afresh with "
                           f"`casestudy train --name {run_dir.name} --overwrite`",
                           keys=("model", "optimizer", "scheduler", "epoch", "config", "history",
                                 "rng", "best_val_acc"))


def write_history(history: list[dict], run_dir: Path, data_name: str) -> None:
    """Save history.csv and the training-curve figure."""
    frame = pd.DataFrame(history)
    files.write_csv(frame, RunFolder(run_dir).history)
    fig, (ax_loss, ax_acc) = plots.plt.subplots(1, 2, figsize=(9, 3.5))
    for split, style in (("train", "-o"), ("val", "-s")):
        ax_loss.plot(frame.epoch, frame[f"{split}_loss"], style, label=split)
        ax_acc.plot(frame.epoch, frame[f"{split}_acc"], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"Training curves ({plots.data_tag(data_name)})")
    plots.save(fig, RunFolder(run_dir).figure("training_curves.png"))
