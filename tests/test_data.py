import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_folder, write_image
from PIL import Image
from torchvision.datasets import ImageFolder

from casestudy import CaseStudyError, data
from casestudy.config import RunConfig


def test_labels_are_explicit_even_though_folder_names_sort_fake_first(tiny_folder):
    # the original notebooks' bug: ImageFolder numbers classes alphabetically
    assert ImageFolder(str(tiny_folder)).class_to_idx == {"fake": 0, "real": 1}
    index = data.index_folder(tiny_folder, progress=False)
    assert (index[index.path.str.contains("/real/")].label == 0).all()
    assert (index[index.path.str.contains("/fake/")].label == 1).all()


def test_folders_are_searched_recursively_for_every_image_type(tmp_path):
    root = make_folder(tmp_path / "d", per_class=4)
    write_image(root / "fake" / "deep" / "er" / "a.JPG", np.full((8, 8, 3), 10, np.uint8),
                format="JPEG")
    write_image(root / "real" / "sub" / "b.webp", np.full((8, 8, 3), 20, np.uint8))
    write_image(root / "real" / "c.jpeg", np.full((8, 8, 3), 30, np.uint8), format="JPEG")
    index = data.index_folder(root, progress=False)
    assert (index.status == "ok").sum() == 11


def test_broken_and_non_image_files_are_listed_with_a_reason_and_excluded(tiny_folder):
    (tiny_folder / "real" / "notes.txt").write_text("not an image")
    (tiny_folder / "fake" / "empty.png").write_bytes(b"")
    good = (tiny_folder / "fake" / "fake_000.png").read_bytes()
    (tiny_folder / "fake" / "truncated.png").write_bytes(good[: len(good) // 2])
    index = data.index_folder(tiny_folder, progress=False)
    bad = index.set_index(index.path.str.rsplit("/", n=1).str[-1])
    assert bad.loc["notes.txt", "status"].startswith("excluded: not an image")
    assert bad.loc["empty.png", "status"] == "excluded: empty file"
    assert bad.loc["truncated.png", "status"].startswith("excluded: unreadable")
    assert (bad.loc[["notes.txt", "empty.png", "truncated.png"], "split"] == "").all()
    assert (index[index.status == "ok"].split != "").all()


def test_an_empty_class_is_a_one_line_error(tmp_path):
    make_folder(tmp_path / "d", per_class=3)
    for f in (tmp_path / "d" / "fake").iterdir():
        f.unlink()
    (tmp_path / "d" / "fake" / "readme.txt").write_text("x")
    with pytest.raises(CaseStudyError, match=r"fake holds no readable image"):
        data.index_folder(tmp_path / "d", progress=False)


@pytest.mark.parametrize("missing", ["real", "fake"])
def test_a_missing_class_folder_is_named(tmp_path, missing):
    make_folder(tmp_path / "d", per_class=3)
    for f in (tmp_path / "d" / missing).iterdir():
        f.unlink()
    (tmp_path / "d" / missing).rmdir()
    with pytest.raises(CaseStudyError, match=f"no {missing}/ folder"):
        data.index_folder(tmp_path / "d", progress=False)


def test_a_missing_dataset_folder_is_an_error(tmp_path):
    with pytest.raises(CaseStudyError, match="does not exist"):
        data.index_folder(tmp_path / "nowhere", progress=False)


@pytest.mark.parametrize("per_class", [20, 33, 100])
def test_splits_are_stratified_70_15_15(tmp_path, per_class):
    index = data.index_folder(make_folder(tmp_path / "d", per_class=per_class, size=8),
                              progress=False)
    counts = pd.crosstab(index.split, index.label)
    for label in (0, 1):
        assert counts.loc["train", label] == round(0.70 * per_class)
        assert counts.loc["val", label] == round(0.15 * per_class)
        assert counts[label].sum() == per_class


def test_splits_are_deterministic_per_seed(tmp_path):
    root = make_folder(tmp_path / "d", per_class=40, size=8)
    first = data.index_folder(root, seed=1, progress=False)
    assert first.split.tolist() == data.index_folder(root, seed=1, progress=False).split.tolist()
    assert first.split.tolist() != data.index_folder(root, seed=2, progress=False).split.tolist()


def test_identical_files_share_a_split_and_leakage_is_detected(tmp_path):
    root = make_folder(tmp_path / "d", per_class=30, size=8)
    original = (root / "real" / "real_000.png").read_bytes()
    for i in range(5):
        (root / "real" / f"copy_{i}.png").write_bytes(original)
    index = data.index_folder(root, progress=False)
    copies = index[index.sha256 == index.sha256[index.path.str.endswith("real_000.png")].item()]
    assert len(copies) == 6 and copies.split.nunique() == 1
    assert data.find_leaks(index).empty
    leaky = index.copy()
    leaky.loc[copies.index[0], "split"] = "test" if copies.split.iloc[0] != "test" else "train"
    assert len(data.find_leaks(leaky)) == 6
    data.save_index(leaky, tmp_path / "index.csv")
    with pytest.raises(CaseStudyError, match="leakage"):
        data.load_index(tmp_path / "index.csv")


def test_the_same_bytes_as_real_and_fake_are_excluded(tiny_folder):
    (tiny_folder / "fake" / "dup.png").write_bytes((tiny_folder / "real" / "real_001.png").read_bytes())
    index = data.index_folder(tiny_folder, progress=False)
    clash = index[index.status.str.contains("both real and fake")]
    assert len(clash) == 2 and (clash.split == "").all()


@pytest.mark.parametrize("mode,array,expected", [
    ("L", np.full((6, 6), 100, np.uint8), (100, 100, 100)),
    ("RGBA", np.dstack([np.full((6, 6, 3), 50, np.uint8), np.full((6, 6), 255, np.uint8)]), (50, 50, 50)),
    ("I;16", np.full((6, 6), 200 * 256, np.uint16), (200, 200, 200)),
])
def test_decode_turns_every_mode_into_rgb_uint8(tmp_path, mode, array, expected):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    img = Image.fromarray(array)
    assert img.mode == mode
    img.save(path)
    out = data.decode(str(path), 6)
    assert out.shape == (3, 6, 6) and out.dtype == np.uint8
    assert tuple(out[:, 3, 3]) == expected


def test_decode_palette_image(tmp_path):
    img = Image.new("P", (5, 5))
    img.putpalette([10, 20, 30] + [0] * 765)
    img.save(tmp_path / "p.png")
    assert tuple(data.decode(str(tmp_path / "p.png"), 5)[:, 2, 2]) == (10, 20, 30)


def test_cache_is_reused_and_rebuilt_when_files_change(tiny_folder, tmp_path):
    index = data.index_folder(tiny_folder, progress=False)
    cache = tmp_path / "cache"
    images, labels, paths = data.load_split(index, "train", 16, cache, progress=False)
    assert images.shape == (len(paths), 3, 16, 16) and images.dtype == torch.uint8
    files = list((cache / "16").glob("train-*.npy"))
    assert len(files) == 1
    again, _, _ = data.load_split(index, "train", 16, cache, progress=False)
    assert torch.equal(images, again)
    changed = index.copy()
    changed.loc[changed.split == "train", "sha256"] = "0" * 64
    data.load_split(changed, "train", 16, cache, progress=False)
    assert list((cache / "16").glob("train-*.npy")) != files


def test_parallel_and_serial_decoding_agree(tmp_path):
    root = make_folder(tmp_path / "d", per_class=40, size=20)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    np.testing.assert_array_equal(data.load_images(paths, 12, False, workers=2),
                                  data.load_images(paths, 12, False, workers=1))


def test_synthetic_data_is_made_afresh_when_its_settings_change(tmp_path):
    first = data.load_index(data.prepare("synthetic", str(tmp_path), synthetic_per_class=12,
                                         synthetic_size=16, progress=False))
    again = data.load_index(data.prepare("synthetic", str(tmp_path), synthetic_per_class=12,
                                         synthetic_size=16, progress=False))
    assert first.equals(again)
    fewer = data.load_index(data.prepare("synthetic", str(tmp_path), synthetic_per_class=5,
                                         synthetic_size=16, progress=False))
    assert len(first) == 24 and len(fewer) == 10
    assert (fewer.width == 16).all()


def test_an_index_keeps_its_own_images_relative_so_its_folder_can_be_copied(tiny_folder, tmp_path):
    made = data.prepare("synthetic", str(tmp_path / "a"), synthetic_per_class=6, synthetic_size=16,
                        progress=False)
    stored = pd.read_csv(made, keep_default_na=False).path
    assert stored.str.startswith("images/").all()  # inside the dataset's folder: relative
    outside = data.prepare(str(tiny_folder), str(tmp_path / "d"), progress=False)
    assert pd.read_csv(outside).path.str.startswith(str(tiny_folder.resolve())).all()  # elsewhere: absolute
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    moved = data.load_index(tmp_path / "b" / "synthetic" / "index.csv")
    assert moved.path.str.startswith(str((tmp_path / "b").resolve())).all()
    assert all(Path(p).is_file() for p in moved.path)
    again = data.load_index(data.prepare("synthetic", str(tmp_path / "b"), synthetic_per_class=6,
                                         synthetic_size=16, progress=False))
    assert again.equals(moved)


def test_the_index_follows_the_folder_when_files_are_added(tiny_folder, tmp_path):
    first = data.load_index(data.prepare(str(tiny_folder), str(tmp_path / "d"), progress=False))
    write_image(tiny_folder / "fake" / "new.png", np.full((8, 8, 3), 77, np.uint8))
    second = data.load_index(data.prepare(str(tiny_folder), str(tmp_path / "d"), progress=False))
    assert len(second) == len(first) + 1 and second.path.str.endswith("new.png").any()


def test_max_per_class_keeps_a_seeded_subset_of_each_class(tmp_path):
    root = make_folder(tmp_path / "d", per_class=30, size=8)
    index = data.index_folder(root, seed=0, max_per_class=10, progress=False)
    used = index[index.split != ""]
    assert used.groupby("label").size().tolist() == [10, 10]
    assert data.tally(index) == {"found": 60, "used": 20, "skipped": {"not sampled": 40}}
    again = data.index_folder(root, seed=0, max_per_class=10, progress=False)
    assert sorted(used.path) == sorted(again[again.split != ""].path)


def test_data_cache_decodes_every_split_once_and_rebuilds_on_change(tiny_folder, tmp_path):
    config = RunConfig(data=str(tiny_folder), data_root=str(tmp_path / "data"), image_size=16)
    stores = data.build_cache(config, progress=False)
    assert set(stores["splits"]) == {"train", "val", "test"}
    assert sum(s["images"] for s in stores["splits"].values()) == 24
    files = {p: p.stat().st_mtime_ns for p in stores["folder"].glob("*.npy")}
    assert len(files) == 3
    data.build_cache(config, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stores["folder"].glob("*.npy")} == files  # reused
    write_image(tiny_folder / "real" / "real_000.png", np.zeros((32, 32, 3), np.uint8))
    data.build_cache(config, progress=False)
    assert set(stores["folder"].glob("*.npy")) != set(files)  # a changed image: rebuilt
    config.image_size = 8
    assert data.build_cache(config, progress=False)["folder"].name == "8"


def test_the_cache_is_mapped_and_private_to_each_process(tiny_folder, tmp_path):
    index = data.index_folder(tiny_folder, progress=False)
    images, _, _ = data.load_split(index, "train", 16, tmp_path / "cache", progress=False)
    original = images[0].clone()
    images[0] = 0  # a process may write to its view, never to the shared file
    again, _, _ = data.load_split(index, "train", 16, tmp_path / "cache", progress=False)
    assert torch.equal(again[0], original)
