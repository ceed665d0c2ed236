"""Make the embedded synthetic dataset: face-like images that differ only in a faint trace.

Book chapter 01_data. Both classes draw faces from one distribution (head, hair, eyes,
mouth, pose, skin tone, lighting, background) and pass through one camera pipeline:
rendered at 2x and box-downsampled, a random lens blur, random sensor noise, and for a
few images a soft re-save that wipes out the finest detail. Both classes also carry a
faint colour trace of period 2 along y (stripes); only its sign and strength differ:

- real: the camera reads even and odd sensor rows (in a Bayer sensor, red/green and
  green/blue rows) with slightly unequal gains, so even rows come out up to 10% greener
  (or at most 1% redder);
- fake (generator A): the generator's last stride-2 transposed convolution gives its
  output phases unequal gains per colour channel, so even rows come out 3-10% redder,
  plus a brightness checkerboard of at most 0.4% (Odena et al. 2016; Zhang et al. 2019).

The colour stripes hold no brightness, so brightness, colour, sharpness and the greyscale
spectrum do not see them; the greyscale spectrum sees only the fakes' faint brightness
checkerboard (in its highest, corner frequency). A CNN, which sees colour and phase, can
learn the sign of the stripes. Generator B, which training never sees, up-samples by
nearest neighbour and smooths: its colour trace is a checkerboard in other colours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from casestudy import CaseStudyError

VERSION = 2  # part of the stamp of a made set: a new version makes old sets be remade

README = """SYNTHETIC DATA - NOT PHOTOGRAPHS OF PEOPLE.

Made by casestudy.synthetic (generator {generator}, seed {seed}, {per_class} images per class,
{size}x{size} px). Both classes: the same faces, rendered at 2x, box-downsampled, random lens
blur and sensor noise, a few re-saved softly (their traces are gone).
real/: even rows up to 10% greener (at most 1% redder) than odd rows (a camera's row gains).
fake/: {fake}
Labels: real = 0, fake = 1.
"""

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as casestudy.eda


def isoluminant(rgb) -> np.ndarray:
    """Shift a colour direction so that it holds no luminance, and scale it to unit length."""
    rgb = np.asarray(rgb, np.float32)
    rgb = rgb - (LUMA @ rgb) / (LUMA @ LUMA) * LUMA
    return (rgb / np.linalg.norm(rgb)).astype(np.float32)


LENS_BLUR = (0.2, 0.6)  # std of the lens blur, output pixels, drawn per image
SENSOR_NOISE = (0.5 / 255, 2.5 / 255)  # std of the sensor noise, [0, 1] units, drawn per image
RESAVED = 0.06  # share of images (either class) re-saved softly: their trace is gone
RESAVE_BLUR = 1.0  # std of that re-save's blur, output pixels
# A trace's amplitude per unit brightness, drawn per image; > 0: even rows redder, < 0: greener.
CAMERA_GAIN = (-0.10, 0.01)
RED_GREEN = isoluminant([1.0, -0.6, 0.0])  # red against green, no brightness
GREY = np.ones(3, np.float32)  # brightness alone
GENERATORS = {
    # colours: the colour trace's direction; gain: its amplitude, drawn per image; pattern:
    # "rows" (-1)^y or "checker" (-1)^(x+y); brightness: a brightness checkerboard's amplitude
    "A": {"colours": RED_GREEN, "gain": (0.03, 0.10), "pattern": "rows", "brightness": (0.0, 0.004),
          "about": "even rows 3-10% redder than odd rows, and a 0-0.4% brightness checkerboard "
                   "(a transposed convolution's unequal phase gains)"},
    "B": {"colours": isoluminant([0.3, -1.0, 1.0]), "gain": (0.05, 0.10), "pattern": "checker",
          "brightness": (0.0, 0.004),
          "about": "a 5-10% cyan/red checkerboard, and a 0-0.4% brightness checkerboard "
                   "(nearest-neighbour up-sampling and smoothing)"},
}

SKIN = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.70, 0.50, 0.36], [0.45, 0.31, 0.22]])
HAIR = np.array([[0.10, 0.07, 0.05], [0.35, 0.22, 0.12], [0.80, 0.65, 0.40],
                 [0.55, 0.25, 0.10], [0.60, 0.60, 0.60]])


def sample_face(rng: np.random.Generator) -> dict:
    """Draw one face's parameters, independent of the image's resolution."""
    tone = rng.uniform(0, len(SKIN) - 1)
    low = int(tone)
    skin = SKIN[low] + (tone - low) * (SKIN[min(low + 1, len(SKIN) - 1)] - SKIN[low])
    face = {
        "background": rng.uniform(0.1, 0.9, 3),
        "background_slope": rng.uniform(-0.25, 0.25, 3),
        "light": rng.uniform(-0.35, 0.35),  # left/right shading
        "yaw": rng.uniform(-0.15, 0.15),  # horizontal shift of features
        "roll": rng.uniform(-0.2, 0.2),  # head tilt, radians
        "center": np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.02, 0.1)]),
        "head": np.array([rng.uniform(0.42, 0.52), rng.uniform(0.55, 0.68)]),
        "skin": skin * rng.uniform(0.9, 1.1),
        "hair": HAIR[rng.integers(len(HAIR))] * rng.uniform(0.8, 1.2),
        "hair_height": rng.uniform(0.15, 0.35),
        "eye_gap": rng.uniform(0.16, 0.22),
        "eye_size": rng.uniform(0.045, 0.07),
        "iris": rng.uniform(0.05, 0.45, 3),
        "mouth_width": rng.uniform(0.12, 0.22),
        "mouth_open": rng.uniform(0.02, 0.05),
        "lips": np.array([0.65, 0.3, 0.3]) * rng.uniform(0.8, 1.1),
        "texture": rng.normal(0, 1, (12, 12)),  # skin and hair texture, a coarse field
        "texture_gain": rng.uniform(0.02, 0.06),
    }
    return {k: np.float32(v) if np.isscalar(v) else np.asarray(v, np.float32) for k, v in face.items()}


def render_face(face: dict, size: int) -> np.ndarray:
    """Render a face at `size` x `size`: (H, W, 3) float32 in [0, 1], smooth at every scale."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(coords, coords, indexing="ij")  # (H, W) in [-1, 1]
    c, s = np.cos(face["roll"]), np.sin(face["roll"])
    u = c * (x - face["center"][0]) + s * (y - face["center"][1])  # face-aligned coords
    v = -s * (x - face["center"][0]) + c * (y - face["center"][1])
    edge = 0.02  # edge softness in normalised units (~0.6 px at 64 px)

    def ellipse(cx, cy, rx, ry):
        d = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
        return np.clip((1 - d) / (edge / min(rx, ry)) + 0.5, 0, 1)[..., None]  # (H, W, 1)

    texture = upsample_field(face["texture"], size)[..., None] * face["texture_gain"]
    img = face["background"] + face["background_slope"] * y[..., None]
    hx, hy = face["head"]
    hair = ellipse(0, -hy * 0.25, hx * 1.12, hy * (0.9 + face["hair_height"]))
    img = blend(img, face["hair"] * (1 + 3 * texture), hair)
    shade = 1 + face["light"] * u[..., None]
    img = blend(img, face["skin"] * shade * (1 + texture), ellipse(0, 0.05, hx, hy))
    fringe = ellipse(0, -hy * 0.95, hx * 1.02, hy * face["hair_height"] * 1.4)
    img = blend(img, face["hair"] * (1 + 3 * texture), fringe)
    gap, eye, yaw = face["eye_gap"], face["eye_size"], face["yaw"]
    for side in (-1, 1):
        ex = side * gap + yaw
        img = blend(img, face["hair"] * 0.8, ellipse(ex, -0.16, eye * 1.4, eye * 0.35))  # brow
        img = blend(img, np.array([0.95, 0.95, 0.93]), ellipse(ex, -0.05, eye * 1.2, eye * 0.6))
        img = blend(img, face["iris"], ellipse(ex + yaw * 0.2, -0.05, eye * 0.5, eye * 0.5))
        img = blend(img, np.zeros(3), ellipse(ex + yaw * 0.2, -0.05, eye * 0.22, eye * 0.22))
    img = blend(img, face["skin"] * 0.8 * shade, ellipse(yaw * 1.3, 0.12, 0.045, 0.08))  # nose
    img = blend(img, face["lips"], ellipse(yaw, 0.33, face["mouth_width"], face["mouth_open"]))
    return np.clip(img, 0, 1).astype(np.float32)


def blend(img: np.ndarray, colour, mask: np.ndarray) -> np.ndarray:
    return img * (1 - mask) + np.asarray(colour) * mask


def upsample_field(field: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly enlarge a coarse (h, w) field to (size, size); the same field at any size."""
    h, w = field.shape
    ys = np.clip((np.arange(size) + 0.5) / size * h - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) / size * w - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = field[y0][:, x0] * (1 - fx) + field[y0][:, x1] * fx
    bottom = field[y1][:, x0] * (1 - fx) + field[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def box_downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor blocks: (H, W, 3) -> (H/f, W/f, 3)."""
    h, w, ch = img.shape
    return img.reshape(h // factor, factor, w // factor, factor, ch).mean(axis=(1, 3))


def phase_pattern(size: int, pattern: str) -> np.ndarray:
    """+1 / -1 on the output phases of a x2 up-sampling: (size, size, 1)."""
    y, x = np.indices((size, size))
    parity = (x + y) % 2 if pattern == "checker" else y % 2
    return np.where(parity == 0, 1.0, -1.0).astype(np.float32)[..., None]


def add_trace(img: np.ndarray, colours: np.ndarray, gain: float, pattern: str) -> np.ndarray:
    """Add a periodic trace in the colour direction `colours`, its amplitude `gain` times the
    local brightness, as unequal gains on the pixels of each phase would give."""
    light = (img @ LUMA)[..., None]  # (H, W, 1)
    return img + phase_pattern(img.shape[0], pattern) * light * gain * colours


def make_image(face: dict, size: int, fake: bool, rng: np.random.Generator,
               generator: str = "A") -> np.ndarray:
    """Form one image of `face`: (size, size, 3) uint8, the way a camera or a generator would."""
    img = box_downsample(render_face(face, 2 * size), 2)
    img = gaussian_filter(img, sigma=(rng.uniform(*LENS_BLUR),) * 2 + (0,), mode="nearest")
    if fake:
        spec = GENERATORS[generator]
        img = add_trace(img, spec["colours"], rng.uniform(*spec["gain"]), spec["pattern"])
        img = add_trace(img, GREY, rng.uniform(*spec["brightness"]), "checker")
    else:
        img = add_trace(img, RED_GREEN, rng.uniform(*CAMERA_GAIN), "rows")
    if rng.uniform() < RESAVED:
        img = gaussian_filter(img, sigma=(RESAVE_BLUR, RESAVE_BLUR, 0), mode="nearest")
    img = img + rng.normal(0, rng.uniform(*SENSOR_NOISE), img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_synthetic(out_dir: Path, per_class: int = 300, size: int = 64, seed: int = 0,
                   progress: bool = True, generator: str = "A") -> Path:
    """Write `per_class` real and fake images into out_dir/{real,fake}; deterministic per seed.

    generator "A" makes the training set; "B" (another up-sampling, which training never
    sees) makes a set for `casestudy evaluate --eval-data`. Its real images are drawn
    afresh too (other faces than A's for the same seed).
    """
    if generator not in GENERATORS:
        raise CaseStudyError(f"no synthetic generator {generator!r}: choose one of {', '.join(GENERATORS)}")
    if size % 2 or size < 16:
        raise CaseStudyError(f"synthetic image size must be even and at least 16, not {size}")
    if per_class < 4:
        raise CaseStudyError(f"synthetic data needs at least 4 images per class, not {per_class}")
    out_dir = Path(out_dir)
    for label in ("real", "fake"):
        (out_dir / label).mkdir(parents=True, exist_ok=True)
    (out_dir / "README.txt").write_text(README.format(
        generator=generator, seed=seed, per_class=per_class, size=size,
        fake=GENERATORS[generator]["about"]))
    stream = list(GENERATORS).index(generator)  # B's faces are not A's
    jobs = [(label, i) for i in range(per_class) for label in ("real", "fake")]
    for label, i in tqdm(jobs, desc="synthetic faces", unit="img", disable=not progress):
        # each image has its own stream: the same seed gives the same bytes, in any order
        rng = np.random.default_rng([seed, i, label == "fake", stream])
        img = make_image(sample_face(rng), size, label == "fake", rng, generator)
        Image.fromarray(img).save(out_dir / label / f"{label}_{i:05d}.png")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """`python -m casestudy.synthetic OUT --generator B`: write a synthetic set, e.g. for --eval-data."""
    parser = argparse.ArgumentParser(prog="python -m casestudy.synthetic", description=main.__doc__)
    parser.add_argument("out", help="folder to write real/ and fake/ into")
    parser.add_argument("--generator", default="B", choices=sorted(GENERATORS))
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        make_synthetic(Path(args.out), args.per_class, args.size, args.seed, progress=False,
                       generator=args.generator)
    except (CaseStudyError, OSError) as err:
        print(f"casestudy.synthetic: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.per_class} real and {args.per_class} fake images (generator {args.generator}) "
          f"into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
