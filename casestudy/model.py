"""Build the detector: a torchvision ResNet18 with a 2-class head (real = 0, fake = 1).

Book chapter 03_train.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from casestudy import CaseStudyError
from casestudy.runtime import memory_format

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
URL_VARIABLE = "CASESTUDY_IMAGENET_URL"  # where to fetch the ImageNet weights from


def build_model(weights: str = "none") -> nn.Module:
    """Return ResNet18 with a fresh 2-class head; `weights` is none, imagenet or a .pth path."""
    model = resnet18(weights=None)
    if weights == "imagenet":
        model.load_state_dict(imagenet_state_dict())
    elif weights != "none":
        state = load_weights_file(weights)
        if state["fc.weight"].shape[0] == 2:  # a detector's weights: keep its head too
            model.fc = nn.Linear(model.fc.in_features, 2)
            model.load_state_dict(state)
            return model
        model.load_state_dict(state)
    model.fc = nn.Linear(model.fc.in_features, 2)  # (B, 512) -> (B, 2) logits
    return model


def imagenet_url() -> str:
    return os.environ.get(URL_VARIABLE) or ResNet18_Weights.IMAGENET1K_V1.url


def imagenet_state_dict() -> dict:
    """Load torchvision's ImageNet ResNet18 weights from torch's cache, downloading if absent."""
    url = imagenet_url()
    try:
        return torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True,
                                                  map_location="cpu")
    except (URLError, OSError, RuntimeError) as err:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        name = os.path.basename(url)
        raise CaseStudyError(
            f"could not get the ImageNet weights from {url} ({reason(err)}); offline, use "
            f"--weights none (train from scratch), --weights PATH (a local .pth state dict), "
            f"or copy {name} into {cache}"
        ) from None


def reason(err: Exception) -> str:
    return str(getattr(err, "reason", None) or err).splitlines()[0][:120]


def load_weights_file(path: str) -> dict:
    """Read a state dict from a .pth file: torchvision's, or a casestudy checkpoint's model."""
    if not Path(path).is_file():
        raise CaseStudyError(f"--weights {path}: no such file; use none, imagenet or a .pth path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # any unpickling failure means "not a weights file"
        raise CaseStudyError(f"--weights {path} is not a PyTorch weights file ({reason(err)})") from None
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise CaseStudyError(f"--weights {path} does not hold ResNet18 weights")
    return state


def to_unit(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move uint8 images to the device as floats: (B, 3, H, W) uint8 -> float in [0, 1]."""
    return images.to(device, non_blocking=True).float().div_(255)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Apply the ImageNet normalisation to (B, 3, H, W) floats in [0, 1]."""
    x = (x - IMAGENET_MEAN.to(x.device)) / IMAGENET_STD.to(x.device)
    return x.contiguous(memory_format=memory_format(x.device))


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Turn uint8 images into the model's input: (B, 3, H, W) uint8 -> normalised float."""
    return normalize(to_unit(images, device))


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the 512-d embedding that the head classifies: (B, 3, H, W) -> (B, 512)."""
    m = model
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    return torch.flatten(m.avgpool(x), 1)


def read_checkpoint(path: Path, remedy: str, keys: tuple[str, ...] = ("model",)) -> dict:
    """Load a checkpoint file; a truncated, corrupt or foreign one is a one-line CaseStudyError.

    torch.load notices a cut file but not changed bytes inside one; torch.save's zip holds a
    CRC-32 of every record, which zipfile checks first.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        if damaged:
            raise ValueError(f"record {damaged} fails its CRC check")
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except zipfile.BadZipFile:
        raise CaseStudyError(f"checkpoint {path} is truncated or corrupt (not a whole PyTorch "
                             f"file); {remedy}") from None
    except Exception as err:
        raise CaseStudyError(f"checkpoint {path} is corrupt ({reason(err)}); {remedy}") from None
    missing = [key for key in keys if key not in checkpoint] if isinstance(checkpoint, dict) else keys
    if missing:
        raise CaseStudyError(f"checkpoint {path} lacks {', '.join(missing)}: not a casestudy "
                             f"checkpoint; {remedy}")
    return checkpoint


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Load a trained detector and its checkpoint (config, epoch, metrics)."""
    if not Path(path).is_file():
        raise CaseStudyError(f"no checkpoint at {path}: run `casestudy train` first")
    checkpoint = read_checkpoint(path, f"train the run again with `casestudy train --name "
                                       f"{Path(path).parent.name} --overwrite`")
    model = build_model("none")
    model.load_state_dict(checkpoint["model"])
    model.to(device).eval()
    return model, checkpoint
