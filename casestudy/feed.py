"""Feed the model from the decoded uint8 cache, fast enough that the GPU never waits.

Book chapter 03_train. A split lives on the GPU when it fits (20k images at 224 px are
3 GB of uint8); otherwise each batch is gathered on the CPU, pinned and copied without
blocking while the previous batch computes. Augmentation and normalisation then run on
the device, on the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch

RESIDENT_FRACTION = 0.5  # keep a split on the GPU when it takes at most this share of free memory


def place(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a uint8 split (N, 3, H, W) to the GPU when it fits; leave it on the CPU otherwise."""
    if device.type != "cuda" or images.device.type == "cuda":
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() <= RESIDENT_FRACTION * free:
        return images.to(device)
    return images


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """Shuffled indices of one epoch; every rank draws the same permutation and takes its own shard."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator)
    return order[: n - n % world][rank::world] if world > 1 else order


def _gather_pinned(images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor):
    return images[idx].pin_memory(), labels[idx].pin_memory()


def batches(images: torch.Tensor, labels: torch.Tensor | None, order: torch.Tensor, batch_size: int,
            device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield (uint8 images (B, 3, H, W), labels (B,)) on the device, in the given order.

    From a CPU split bound for the GPU, the next batch is gathered and pinned in a
    background thread while the current one is used.
    """
    labels = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
    chunks = order.split(batch_size)
    if images.device.type == "cuda" or device.type != "cuda":  # resident, or no GPU: plain indexing
        labels = labels.to(images.device)
        for idx in chunks:
            idx = idx.to(images.device)
            yield images[idx].to(device), labels[idx].to(device)
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_gather_pinned, images, labels, chunks[0]) if chunks else None
        for i in range(len(chunks)):
            x, y = pending.result()
            if i + 1 < len(chunks):
                pending = pool.submit(_gather_pinned, images, labels, chunks[i + 1])
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def in_order(images: torch.Tensor, batch_size: int, device: torch.device,
             labels: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield every image once, in order, as the model's input (normalised float) with its labels."""
    from casestudy.model import to_input

    for x, y in batches(images, labels, torch.arange(len(images)), batch_size, device):
        yield to_input(x, device), y
