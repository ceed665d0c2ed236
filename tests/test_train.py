import http.server
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import torch

from casestudy import CaseStudyError, feed, train
from casestudy.config import RunConfig
from casestudy.evaluate import predict
from casestudy.model import build_model, load_checkpoint


def images(n=6, size=12, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_augment_with_everything_off_is_the_identity():
    x = images()
    assert torch.equal(train.augment(x, crop=12, padding=0, jitter=0, flip=False), x)


def test_flip_mirrors_some_images_and_keeps_the_others():
    torch.manual_seed(0)
    x = images(n=32)
    out = train.augment(x, crop=12, flip=True)
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < 32


@pytest.mark.parametrize("crop,padding", [(12, 4), (8, 0), (6, 2)])
def test_crop_takes_a_window_of_the_zero_padded_image(crop, padding):
    x = images()
    out = train.augment(x, crop=crop, padding=padding, flip=False)
    assert out.shape == (6, 3, crop, crop)
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    for o, p in zip(out, padded):
        windows = p.unfold(1, crop, 1).unfold(2, crop, 1)  # (3, ny, nx, crop, crop)
        assert (windows == o[:, None, None]).flatten(3).all(-1).all(0).any()


def test_random_resized_crop_cuts_a_box_and_resizes_it():
    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 40).view(1, 1, 1, 40).expand(8, 3, 40, 40).contiguous()
    out = train.augment(ramp, crop=16, flip=False, scale_min=0.25)
    assert out.shape == (8, 3, 16, 16)
    # each output is a horizontal ramp again: increasing along x, constant along y
    assert (out[..., 1:] >= out[..., :-1] - 1e-6).all()
    assert torch.allclose(out, out[:, :, :1, :].expand_as(out), atol=1e-6)
    spans = out[:, 0, 0, -1] - out[:, 0, 0, 0]  # the box widths differ image to image
    assert spans.max() - spans.min() > 0.05 and spans.max() <= 1.0
    flat = train.augment(torch.full((2, 3, 40, 40), 0.3), crop=16, flip=False, scale_min=0.5)
    assert torch.allclose(flat, torch.full_like(flat, 0.3))


def test_jitter_stays_in_range_and_changes_pixels():
    x = images()
    out = train.augment(x, crop=12, jitter=0.2, flip=False)
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, x)


@pytest.fixture
def config(tiny_folder, tmp_path):
    return RunConfig(name="t", data=str(tiny_folder), data_root=str(tmp_path / "data"),
                     runs_root=str(tmp_path / "runs"), image_size=32, epochs=2, batch_size=8,
                     device="cpu")


def test_augmentation_only_touches_the_training_split(config, monkeypatch):
    calls = []
    real_augment = train.augment
    monkeypatch.setattr(train, "augment", lambda *a, **k: calls.append(1) or real_augment(*a, **k))
    (train_x, train_y, _), (val_x, val_y, _) = train.load_data(config, progress=False)
    model = build_model("none")
    optimizer, scheduler = train.make_optimizer(model, config, 10, torch.device("cpu"))
    train.train_one_epoch(model, optimizer, scheduler, train_x, train_y, config, torch.device("cpu"))
    assert calls, "training must augment"
    calls.clear()
    train.evaluate_loss(model, val_x, val_y, torch.device("cpu"))
    predict(model, val_x, torch.device("cpu"))
    assert not calls, "validation and prediction must not augment"


def test_training_writes_checkpoints_history_and_curves(config):
    best = train.train(config, progress=False)
    run = config.run_dir
    for name in ("checkpoint.pt", "last.pt", "history.csv", "config.yaml",
                 "figures/training_curves.png"):
        assert (run / name).is_file(), name
    checkpoint = torch.load(run / "last.pt", weights_only=False)
    assert {"model", "optimizer", "scheduler", "epoch", "config", "rng"} <= set(checkpoint)
    assert checkpoint["epoch"] == 1 and checkpoint["config"]["image_size"] == 32
    history = pd.read_csv(run / "history.csv")
    assert history.epoch.tolist() == [1, 2]
    model, saved = load_checkpoint(best)
    assert saved["best_val_acc"] == history.val_acc.max()


def test_resume_after_an_interruption_matches_an_uninterrupted_run(config, monkeypatch, one_thread):
    uninterrupted = RunConfig(**{**config.to_dict(), "name": "full"})
    train.train(uninterrupted, progress=False)
    real_epoch = train.train_one_epoch

    def stop_in_second_epoch(*args):
        if args[7] == 1:  # (model, optimizer, scheduler, x, y, config, device, epoch, progress)
            raise KeyboardInterrupt
        return real_epoch(*args)

    monkeypatch.setattr(train, "train_one_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.train(config, progress=False)
    assert torch.load(config.run_dir / "last.pt", weights_only=False)["epoch"] == 0
    monkeypatch.setattr(train, "train_one_epoch", real_epoch)
    train.train(config, resume=True, progress=False)
    resumed = torch.load(config.run_dir / "last.pt", weights_only=False)
    full = torch.load(uninterrupted.run_dir / "last.pt", weights_only=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    for key, value in full["model"].items():
        assert torch.equal(resumed["model"][key], value), key


def synthetic_run(root: Path) -> RunConfig:
    return RunConfig(name="t", data="synthetic", data_root=str(root / "data"), runs_root=str(root / "runs"),
                     synthetic_per_class=12, synthetic_size=32, image_size=32, epochs=2, batch_size=8,
                     device="cpu")


def test_an_interrupted_run_copied_elsewhere_with_its_data_resumes_there(tmp_path, monkeypatch, one_thread):
    real_epoch = train.train_one_epoch

    def stop_in_second_epoch(*args):
        if args[7] == 1:
            raise KeyboardInterrupt
        return real_epoch(*args)

    monkeypatch.setattr(train, "train_one_epoch", stop_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.train(synthetic_run(tmp_path / "a"), progress=False)
    monkeypatch.setattr(train, "train_one_epoch", real_epoch)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")  # the split's images are found in the copy, or nowhere
    train.train(synthetic_run(tmp_path / "b"), resume=True, progress=False)
    resumed = torch.load(tmp_path / "b" / "runs" / "t" / "last.pt", weights_only=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]


def test_an_existing_run_is_never_replaced_by_accident(config):
    train.train(config, progress=False)
    (config.run_dir / "metrics.json").write_text("{}")  # a result of the earlier run
    with pytest.raises(CaseStudyError, match="--overwrite"):
        train.train(config, progress=False)
    assert (config.run_dir / "metrics.json").exists()
    train.train(config, overwrite=True, progress=False)
    assert not (config.run_dir / "metrics.json").exists()  # stale results cleared
    assert (config.run_dir / "checkpoint.pt").exists()


def test_resume_without_a_run_is_a_clear_error(config):
    with pytest.raises(CaseStudyError, match="nothing to resume"):
        train.train(config, resume=True, progress=False)


# ---------------------------------------------------------------- ImageNet weights, offline


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """Serve a ResNet18 ImageNet-shaped state dict on 127.0.0.1, named as torch hub expects."""
    import hashlib

    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    served = tmp_path / "served"
    served.mkdir()
    state = resnet18(weights=None).state_dict()
    tmp = served / "weights.pth"
    torch.save(state, tmp)
    name = f"resnet18-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(served / name)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CASESTUDY_IMAGENET_URL", f"http://127.0.0.1:{server.server_port}/{name}")
    yield state
    server.shutdown()
    server.server_close()


def test_imagenet_weights_download_verify_and_load(weights_server):
    model = build_model("imagenet")
    assert torch.equal(model.conv1.weight, weights_server["conv1.weight"])
    assert model.fc.out_features == 2


def test_imagenet_weights_come_from_the_cache_once_downloaded(weights_server, monkeypatch):
    build_model("imagenet")
    name = os.environ["CASESTUDY_IMAGENET_URL"].rsplit("/", 1)[1]
    assert (Path(torch.hub.get_dir()) / "checkpoints" / name).is_file()
    monkeypatch.setenv("CASESTUDY_IMAGENET_URL", f"http://127.0.0.1:9/{name}")  # nothing there
    assert torch.equal(build_model("imagenet").conv1.weight, weights_server["conv1.weight"])


def test_imagenet_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("CASESTUDY_IMAGENET_URL", "http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.raises(CaseStudyError) as err:
        build_model("imagenet")
    message = str(err.value)
    assert "--weights none" in message and "--weights PATH" in message and "\n" not in message


def test_weights_from_a_file(tmp_path):
    trained = build_model("none")
    torch.save({"model": trained.state_dict()}, tmp_path / "detector.pt")
    loaded = build_model(str(tmp_path / "detector.pt"))
    assert torch.equal(loaded.fc.weight, trained.fc.weight)
    with pytest.raises(CaseStudyError, match="no such file"):
        build_model(str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(CaseStudyError, match="not a PyTorch weights file"):
        build_model(str(tmp_path / "junk.pth"))


def test_a_crop_without_padding_or_shift_is_the_image_itself():
    x = images(n=4, size=8)
    out = train.augment(x, crop=8, padding=0, flip=False)
    assert torch.equal(out, x)
    padded = train.augment(x, crop=8, padding=3, flip=False)  # every window is some shift of x
    for img, src in zip(padded, x):
        nonzero = img.abs().sum(0) > 0
        assert nonzero.any() and torch.isin(img[:, nonzero].flatten(), src.flatten()).all()


@pytest.mark.parametrize("n, world", [(10, 1), (10, 2), (11, 3)])
def test_each_rank_gets_a_disjoint_shard_of_one_permutation(n, world):
    shards = [feed.epoch_order(n, seed=0, epoch=3, rank=r, world=world) for r in range(world)]
    joined = torch.cat(shards)
    assert len(set(joined.tolist())) == len(joined) == n - n % world  # disjoint, equal sizes
    assert len({len(s) for s in shards}) == 1
    assert not torch.equal(feed.epoch_order(n, 0, 3), feed.epoch_order(n, 0, 4))  # new order per epoch


def test_batches_keep_images_and_labels_together():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    y = torch.arange(10)
    order = torch.tensor([3, 1, 4, 0, 9, 2])
    got = list(feed.batches(x, y, order, 4, torch.device("cpu")))
    assert [len(b) for b, _ in got] == [4, 2]
    assert torch.equal(torch.cat([b[:, 0, 0, 0] for b, _ in got]).long(), order)
    assert torch.equal(torch.cat([lab for _, lab in got]), order)


def test_training_on_two_processes_with_ddp(tiny_folder, tmp_path):
    """torchrun with the gloo backend on the CPU: one run, written once, by rank 0."""
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "casestudy", "train", "--data", str(tiny_folder), "--data-root", str(tmp_path / "data"),
         "--runs-root", str(tmp_path / "runs"), "--name", "ddp", "--device", "cpu", "--image-size", "32",
         "--epochs", "2", "--batch-size", "8", "--quiet"],
        cwd=tmp_path, text=True, capture_output=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("best checkpoint") == 1  # only rank 0 speaks and writes
    run = tmp_path / "runs" / "ddp"
    history = pd.read_csv(run / "history.csv")
    assert history.epoch.tolist() == [1, 2]
    model, saved = load_checkpoint(run / "checkpoint.pt")
    assert saved["config"]["batch_size"] == 8 and saved["best_val_acc"] == history.val_acc.max()


@pytest.mark.gpu
def test_training_on_the_gpu(config):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    x = torch.randint(0, 255, (20, 3, 8, 8), dtype=torch.uint8)
    got = torch.cat([b.cpu() for b, _ in feed.batches(x, None, torch.arange(20), 7, torch.device("cuda"))])
    assert torch.equal(got, x)  # pinned, non-blocking copies arrive intact
    config.device = "cuda"
    train.train(config, progress=False)
    history = pd.read_csv(config.run_dir / "history.csv")
    assert history.epoch.tolist() == [1, 2] and history.train_loss.notna().all()


def test_the_learning_rate_follows_the_batch_by_the_square_root_rule():
    assert train.scaled_lr(RunConfig(lr=0.002, batch_size=512, lr_batch=128)) == pytest.approx(0.004)
    assert train.scaled_lr(RunConfig(lr=0.002, batch_size=512)) == 0.002  # lr_batch 0: as given
    model = build_model("none")
    optimizer, scheduler = train.make_optimizer(model, RunConfig(lr=0.001, batch_size=64, lr_batch=16),
                                                100, torch.device("cpu"))
    assert optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.002)


def test_only_training_runs_under_torchrun(monkeypatch, capsys):
    from casestudy import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["evaluate", "--quiet"]) == 2
    assert "only `casestudy train`" in capsys.readouterr().err
