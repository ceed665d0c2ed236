"""Make the embedded synthetic dataset: face-like images that differ only in how they were formed.

Book chapter 01_data. Both classes draw faces from one distribution (head, hair, eyes,
mouth, pose, skin tone, lighting, background). A "real" image is rendered at 2x the
final size, box-downsampled (a camera integrating light over each pixel), softened by a
lens blur that gives it the same sharpness as a fake, and given mild sensor noise.
A "fake" image is rendered at half the final size and enlarged by a transposed-
convolution-style x2 upsampling whose four output phases have slightly unequal gains,
the periodic trace GAN generators leave (Durall et al. 2020; Zhang et al. 2019).
The trace is faint: invisible at a glance, clear in the averaged spectrum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from casestudy import CaseStudyError

README = """SYNTHETIC DATA - NOT PHOTOGRAPHS OF PEOPLE.

Made by `casestudy data synthetic` (seed {seed}, {per_class} images per class, {size}x{size} px).
real/: rendered at 2x, box-downsampled, lens blur, mild sensor noise (like a camera).
fake/: rendered at 1/2 size, enlarged by transposed-convolution-style upsampling that
       leaves a faint periodic trace (like a GAN generator).
Labels: real = 0, fake = 1.
"""

UPSAMPLE_PHASE_GAIN = 0.04  # +-4% gain between the output phases of the x2 up-convolution
SENSOR_NOISE = 0.01  # std of the sensor noise, in [0, 1] intensity units
LENS_BLUR = 0.6  # std of the real camera's blur, in output pixels: matches a fake's sharpness

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


def upconv2x(img: np.ndarray, phase_gain: float = UPSAMPLE_PHASE_GAIN) -> np.ndarray:
    """Enlarge x2 like a stride-2 transposed convolution: (H, W, 3) -> (2H, 2W, 3).

    The bilinear up-convolution kernel [1, 3, 3, 1] / 4 gives both output phases the same
    total weight; here the even and odd phases get 1 + g and 1 - g along each axis, the
    checkerboard GAN generators leave. Mean intensity is kept, so colour and brightness
    carry no trace.
    """
    for axis in (0, 1):
        img = np.moveaxis(img, axis, 0)
        padded = np.concatenate([img[:1], img, img[-1:]])  # edge padding
        even = 0.25 * padded[:-2] + 0.75 * padded[1:-1]
        odd = 0.75 * padded[1:-1] + 0.25 * padded[2:]
        out = np.empty((2 * img.shape[0], *img.shape[1:]), dtype=np.float32)
        out[0::2], out[1::2] = even * (1 + phase_gain), odd * (1 - phase_gain)
        img = np.moveaxis(out, 0, axis)
    return img


def make_image(face: dict, size: int, fake: bool, rng: np.random.Generator) -> np.ndarray:
    """Form one image of `face`: (size, size, 3) uint8, the way a camera or a GAN would."""
    if fake:
        low = box_downsample(render_face(face, size), 2)  # a clean half-size image
        img = upconv2x(low)
    else:
        img = box_downsample(render_face(face, 2 * size), 2)
        img = gaussian_filter(img, sigma=(LENS_BLUR, LENS_BLUR, 0), mode="nearest")
    img = img + rng.normal(0, SENSOR_NOISE, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_synthetic(out_dir: Path, per_class: int = 300, size: int = 64, seed: int = 0,
                   progress: bool = True) -> Path:
    """Write `per_class` real and fake images into out_dir/{real,fake}; deterministic per seed."""
    if size % 2 or size < 16:
        raise CaseStudyError(f"synthetic image size must be even and at least 16, not {size}")
    if per_class < 4:
        raise CaseStudyError(f"synthetic data needs at least 4 images per class, not {per_class}")
    out_dir = Path(out_dir)
    for label in ("real", "fake"):
        (out_dir / label).mkdir(parents=True, exist_ok=True)
    (out_dir / "README.txt").write_text(README.format(seed=seed, per_class=per_class, size=size))
    jobs = [(label, i) for i in range(per_class) for label in ("real", "fake")]
    for label, i in tqdm(jobs, desc="synthetic faces", unit="img", disable=not progress):
        # each image has its own stream: the same seed gives the same bytes, in any order
        rng = np.random.default_rng([seed, i, label == "fake"])
        img = make_image(sample_face(rng), size, fake=label == "fake", rng=rng)
        Image.fromarray(img).save(out_dir / label / f"{label}_{i:05d}.png")
    return out_dir
