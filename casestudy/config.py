"""Hold every setting of a run in one dataclass, loaded from a preset and overridden by flags.

Each setting is declared once, on its field: its type, its allowed range, its help text, which
stages use it, and whether it defines the trained run. The CLI generates its flags from these
declarations, and every value, from YAML or a flag, is parsed and checked here before any work
starts. Nothing here imports torch, so `--help` and a bad setting answer at once.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from casestudy import CaseStudyError

PRESETS = Path(__file__).parent / "configs"

# Which settings a run is made of. RUN settings define the trained run: a stage acting on a
# trained run takes them from the run folder and refuses a flag that contradicts them. STAGE
# settings belong to one later stage (its flag wins). PLACE settings say where or how to compute
# and never change a result's meaning.
RUN, STAGE, PLACE = "run", "stage", "place"

DATA_STAGES = ("data index", "data synthetic", "data cache", "eda", "train", "run")
TRAIN_STAGES = ("train", "run")
RUN_STAGES = ("eda", "train", "evaluate", "tsne", "gradcam", "report", "run")
MODEL_STAGES = ("train", "evaluate", "tsne", "gradcam", "run")


def setting(default, help: str, role: str = RUN, stages: tuple = TRAIN_STAGES, low=None,
            high=None, choices: tuple | None = None, pattern: str | None = None, allowed: str = "",
            above=None):
    """Declare one setting: its default, help, role, the stages that use it, and what is allowed
    (low and high inclusive, above exclusive)."""
    meta = {"help": help, "role": role, "stages": stages, "low": low, "high": high, "above": above,
            "choices": choices, "pattern": pattern, "allowed": allowed}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MAX_NAME = 100  # a run name is a folder name: well below any file system's limit
PERTURBATION = r"(jpeg:(100|[1-9][0-9]?)|downscale:0?\.[0-9]*[1-9][0-9]*|blur:[0-9]*\.?[0-9]+)"


@dataclass
class RunConfig:
    """Every setting of one run; saved into the run folder and every checkpoint."""

    name: str = setting("demo", "run name: results go to <runs-root>/<name>/", PLACE, RUN_STAGES,
                        pattern=NAME, allowed=f"a plain name of at most {MAX_NAME} letters, digits, '.', "
                        "'_' or '-', no '/' and not starting with '.'")
    data: str = setting("synthetic", "'synthetic' or a folder with real/ and fake/ below it",
                        stages=DATA_STAGES)
    data_root: str = setting("data", "where datasets, indexes and caches are kept", PLACE,
                             (*DATA_STAGES, "data fetch", *RUN_STAGES))
    runs_root: str = setting("runs", "where run folders are written", PLACE, RUN_STAGES)
    seed: int = setting(0, "seed of the split and of every random choice", stages=DATA_STAGES,
                        low=0, high=2**32 - 1)
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps", PLACE, MODEL_STAGES,
                          pattern=r"auto|cpu|mps|cuda(:[0-9]+)?",
                          allowed="auto, cpu, cuda, cuda:N or mps")
    deterministic: bool = setting(False, "deterministic kernels: a run, or a resumed one, repeats "
                                  "exactly (slower)", PLACE)
    # synthetic data
    synthetic_per_class: int = setting(300, "synthetic images per class", stages=DATA_STAGES,
                                       low=10, high=100_000)
    synthetic_size: int = setting(64, "synthetic image size in pixels", stages=DATA_STAGES,
                                  low=16, high=1024)
    # images and augmentation (training split only)
    image_size: int = setting(64, "images are resized to this many pixels square, then cached",
                              stages=(*TRAIN_STAGES, "data cache"), low=16, high=1024)
    train_crop: int = setting(0, "train on random crops of this size (0: crop back to --image-size)",
                              low=0, high=1024)
    crop_padding: int = setting(4, "pad training images by this many pixels before the random crop",
                                low=0, high=256)
    padding_mode: str = setting("constant", "padding of the random crop: constant (zeros) or reflect",
                                choices=("constant", "reflect"))
    scale_min: float = setting(0.0, "> 0: random-resized crops of at least this area fraction instead",
                               low=0.0, high=1.0)
    jitter: float = setting(0.1, "brightness / contrast / saturation jitter, +-", low=0.0, high=1.0)
    flip: bool = setting(True, "random horizontal flips")
    max_per_class: int = setting(0, "use at most this many images per class (0: all)",
                                 stages=DATA_STAGES, low=0)
    # model and optimisation
    weights: str = setting("none", "none, imagenet or a .pth file", pattern=r"none|imagenet|.+\.pth?",
                           allowed="none, imagenet or a path ending in .pth or .pt")
    epochs: int = setting(8, "training epochs", low=1, high=10_000)
    batch_size: int = setting(32, "batch size", low=2, high=65_536)
    lr: float = setting(2e-3, "peak learning rate (warm-up, then cosine decay)", above=0.0,
                        allowed="a finite number > 0")
    lr_batch: int = setting(0, "the batch size --lr was chosen for: scale it by sqrt(batch size / "
                            "this) (0: no scaling)", low=0, high=65_536)
    weight_decay: float = setting(5e-4, "AdamW weight decay", low=0.0, high=1.0)
    label_smoothing: float = setting(0.0, "label smoothing of the loss", low=0.0, high=0.99)
    compile: bool = setting(False, "compile the model with torch.compile (slow start, faster epochs "
                            "on a GPU)", PLACE)
    # later stages
    eda_per_class: int = setting(500, "images per class the EDA measures (0: all)", STAGE,
                                 ("eda", "run"), low=0)
    eval_data: list[str] = setting([], "also evaluate on this dataset folder (repeatable)", STAGE,
                                   ("evaluate", "run"))
    perturbations: list[str] = setting(["jpeg:50", "downscale:0.5", "blur:1.0"],
                                       "perturb the test images this way (repeatable; none: no "
                                       "perturbations)", STAGE, ("evaluate", "run"),
                                       pattern=PERTURBATION,
                                       allowed="jpeg:Q (Q 1-100), downscale:F (0 < F < 1) or "
                                       "blur:SIGMA (SIGMA > 0)")
    tsne_perplexity: float = setting(30.0, "t-SNE perplexity", STAGE, ("tsne", "run"), low=1.0,
                                     high=1000.0)
    tsne_max_points: int = setting(2000, "t-SNE embeds at most this many test images", STAGE,
                                   ("tsne", "run"), low=5)
    gradcam_per_group: int = setting(4, "Grad-CAM examples per group (true class, right or wrong)",
                                     STAGE, ("gradcam", "run"), low=1, high=64)
    gradcam_max_mean: int = setting(200, "test images averaged into the mean Grad-CAM", STAGE,
                                    ("gradcam", "run"), low=1)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            setattr(self, f.name, parse_setting(f, getattr(self, f.name)))
        if self.train_crop > self.image_size:
            raise CaseStudyError(f"train_crop {self.train_crop} is larger than image_size "
                                 f"{self.image_size}: allowed 0 or at most image_size")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_root) / self.name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def role(name: str) -> str:
    return FIELDS[name].metadata["role"]


def run_settings() -> list[str]:
    """The settings that define a trained run."""
    return [name for name in FIELDS if role(name) == RUN]


# ---------------------------------------------------------------- parsing and checking


def parse_setting(f: dataclasses.Field, value):
    """Turn a value from YAML or a flag into the setting's type; raise if it is not allowed."""
    kind, meta = f.type, f.metadata
    try:
        if kind == "list[str]":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(
                    isinstance(v, str | int | float) for v in items):
                raise ValueError("a list of texts")
            items = [str(v).strip() for v in items]
            parsed = [] if items in (["none"], [""]) else items
            for item in parsed:
                check_text(f, item)
            return parsed
        if kind == "bool":
            return parse_bool(value)
        if kind == "int":
            parsed = parse_int(value)
        elif kind == "float":
            parsed = parse_float(value)
        else:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError("a text")
            parsed = str(value).strip()
            check_text(f, parsed)
            return parsed
    except ValueError as err:
        raise CaseStudyError(f"setting {f.name}: {value!r} is not allowed; allowed: "
                             f"{allowed(f, str(err))}") from None
    low, high, above = meta["low"], meta["high"], meta["above"]
    if ((low is not None and parsed < low) or (high is not None and parsed > high)
            or (above is not None and parsed <= above)):
        raise CaseStudyError(f"setting {f.name}: {value!r} is out of range; allowed: {allowed(f)}")
    return parsed


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError("true or false")


def parse_int(value) -> int:
    if isinstance(value, bool):
        raise ValueError("a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9_]+\s*", value):
        return int(value)
    raise ValueError("a whole number")


def parse_float(value) -> float:
    if isinstance(value, bool):
        raise ValueError("a number")
    try:
        parsed = float(value)  # YAML reads 1e-3 as text: float() parses it
    except (TypeError, ValueError):
        raise ValueError("a number") from None
    if not math.isfinite(parsed):
        raise ValueError("a finite number")
    return parsed


def check_text(f: dataclasses.Field, text: str) -> None:
    meta = f.metadata
    if meta["choices"] and text not in meta["choices"]:
        raise ValueError()
    if meta["pattern"] and not re.fullmatch(meta["pattern"], text):
        raise ValueError()
    if f.name == "name" and (".." in text or len(text) > MAX_NAME):
        raise ValueError()
    if not text and f.name in ("data", "data_root", "runs_root"):
        raise ValueError("a non-empty path")


def allowed(f: dataclasses.Field, kind: str = "") -> str:
    """Say what a setting allows: "an integer >= 1", "constant or reflect", ..."""
    meta = f.metadata
    if meta["allowed"]:
        return meta["allowed"]
    if meta["choices"]:
        return " or ".join(meta["choices"])
    noun = {"int": "an integer", "float": "a number", "bool": "true or false",
            "list[str]": "one value or a list"}.get(f.type, kind or "a text")
    low, high = number(meta["low"]), number(meta["high"])
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    if low is not None:
        return f"{noun} >= {low}"
    return kind or noun


def number(value) -> str | None:
    """A bound as a reader writes it: 4294967295, 0.99, 1 (not 4.29497e+09 or 1.0)."""
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# ---------------------------------------------------------------- presets and files


def load_config(preset: str | None = None, **overrides) -> RunConfig:
    """Load a preset (a name in casestudy/configs or a YAML path) and apply overrides."""
    values: dict = {}
    if preset:
        values.update(read_yaml(preset_path(preset)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(values)


def preset_values(preset: str) -> dict:
    """The values a preset sets (checked), without building a whole RunConfig."""
    return from_dict(read_yaml(preset_path(preset))).to_dict()


def preset_path(preset: str) -> Path:
    path = Path(preset)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise CaseStudyError(f"config file {path} not found")
        return path
    path = PRESETS / f"{preset}.yaml"
    if not re.fullmatch(NAME, preset) or not path.is_file():
        names = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
        raise CaseStudyError(f"no preset named {preset!r}: choose one of {names} or a .yaml path")
    return path


def read_yaml(path: Path) -> dict:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise CaseStudyError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CaseStudyError(f"cannot read {path}: {err.strerror if isinstance(err, OSError) else err}"
                             ) from None
    if not isinstance(values, dict):
        raise CaseStudyError(f"{path} must hold a mapping of settings (name: value)")
    return values


def from_dict(values: dict) -> RunConfig:
    """Build a RunConfig, naming any unknown key instead of failing with a TypeError."""
    unknown = sorted(str(k) for k in set(values) - set(FIELDS))
    if unknown:
        raise CaseStudyError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    return RunConfig(**values)


def save_config(config: RunConfig, path: Path) -> None:
    from casestudy.files import write_text

    write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), path)


def contradictions(saved: RunConfig, config: RunConfig, names) -> list[str]:
    """Name each of `names` whose value in config differs from the saved run's."""
    return [f"{name} {getattr(config, name)!r} (the run has {getattr(saved, name)!r})"
            for name in names if not same_value(name, getattr(saved, name), getattr(config, name))]


def same_value(name: str, a, b) -> bool:
    if name == "data" and a != b and "synthetic" not in (a, b):
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    return a == b
