"""Hold every setting of a run in one dataclass, loaded from a preset and overridden by flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from casestudy import CaseStudyError

PRESETS = Path(__file__).parent / "configs"


@dataclass
class RunConfig:
    """Every setting of one run; saved into the run folder and every checkpoint."""

    name: str = "demo"
    data: str = "synthetic"  # "synthetic" or a folder with real/ and fake/
    data_root: str = "data"  # generated datasets, indexes and caches
    runs_root: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    deterministic: bool = False
    # synthetic data
    synthetic_per_class: int = 300
    synthetic_size: int = 64
    # images and augmentation (training split only)
    image_size: int = 64  # every image is resized to this once, then cached
    train_crop: int = 0  # 0: crop back to image_size after padding (the course's RandomCrop)
    crop_padding: int = 4
    padding_mode: str = "constant"  # constant (zeros, as torchvision's RandomCrop) or reflect
    scale_min: float = 0.0  # > 0: random-resized crops of this least area fraction instead
    jitter: float = 0.1  # brightness / contrast / saturation factor range, +-
    flip: bool = True
    max_per_class: int = 0  # 0: every image
    # model and optimisation
    weights: str = "none"  # none | imagenet | path to a .pth state dict
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    lr_batch: int = 0  # > 0: lr was tuned for this batch size; scale it by sqrt(batch_size / lr_batch)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    compile: bool = False
    # later stages
    eda_per_class: int = 500  # images per class the EDA measures (0: all)
    eval_data: list[str] = field(default_factory=list)  # other datasets to evaluate on
    perturbations: list[str] = field(
        default_factory=lambda: ["jpeg:50", "downscale:0.5", "blur:1.0"]
    )
    tsne_perplexity: float = 30.0
    tsne_max_points: int = 2000
    gradcam_per_group: int = 4
    gradcam_max_mean: int = 200

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_root) / self.name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(preset: str | None = None, **overrides) -> RunConfig:
    """Load a preset (a name in casestudy/configs or a YAML path) and apply overrides."""
    values: dict = {}
    if preset:
        values.update(read_yaml(preset_path(preset)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(values)


def preset_path(preset: str) -> Path:
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise CaseStudyError(f"config file {path} not found")
        return path
    path = PRESETS / f"{preset}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
        raise CaseStudyError(f"no preset named {preset!r}: choose one of {names} or a .yaml path")
    return path


def read_yaml(path: Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise CaseStudyError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise CaseStudyError(f"{path} must hold a mapping of settings")
    return values


def from_dict(values: dict) -> RunConfig:
    """Build a RunConfig, naming any unknown key instead of failing with a TypeError."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CaseStudyError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return RunConfig(**values)


def save_config(config: RunConfig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
