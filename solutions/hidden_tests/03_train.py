"""Hidden tests of 03_train (format: autograder/hidden.py). run_* runs in the student's kernel;
check_* judges its results in the grader, against a reference model and training step."""

import numpy as np


def run_test_make_detector():
    import torch

    torch.manual_seed(0)
    detector = make_detector()
    detector.eval()
    with torch.no_grad():
        out = detector(torch.randn(4, 3, 64, 64))
    fc = getattr(detector, "fc", None)
    return {"classes": [c.__module__ + "." + c.__qualname__ for c in type(detector).__mro__],
            "fc": type(fc).__module__ + "." + type(fc).__qualname__,
            "fc_shape": [getattr(fc, "in_features", None), getattr(fc, "out_features", None)],
            "parameters": sum(p.numel() for p in detector.parameters()), "out": out}


def check_test_make_detector(got):
    out = np.asarray(got["out"])
    assert out.shape == (4, 2), f"4 images gave outputs of shape {out.shape}: expected (4, 2), two logits each"
    assert "torchvision.models.resnet.ResNet" in got["classes"], "start from torchvision's resnet18"
    assert got["fc"] == "torch.nn.modules.linear.Linear", \
        f"the head fc is {got['fc']}: it must be one nn.Linear (softmax belongs to the loss)"
    assert got["fc_shape"] == [512, 2], f"fc maps {got['fc_shape'][0]} features to {got['fc_shape'][1]}: expected 512 to 2"
    assert got["parameters"] == 11_177_538, f"{got['parameters']:,} parameters: ResNet18 with a 2-class head has 11,177,538"
    assert not np.allclose(out.sum(axis=1), 1), "return logits, not probabilities"


def given_toy_problem(seed):
    """A separable toy problem (bright images are class 1) in batches of 8, 8 and 4."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(20) % 2
    x = torch.randn(20, 3, 16, 16, generator=g) * 0.3 + (y.float() * 2 - 1).view(-1, 1, 1, 1)
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)


def given_start(mode):
    """The model every run starts from: a small seeded CNN with batch normalisation (so that the
    mode it trains in matters), quick to train twice."""
    import torch
    from torch import nn

    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2))
    getattr(model, mode)()  # a model handed over in eval mode must train too
    return model


def run_test_train_one_epoch():
    import torch

    got = {}
    for mode in ("eval", "train"):
        model = given_start(mode)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        result = train_one_epoch(model, given_toy_problem(1), optimizer, torch.device("cpu"))
        state = model.state_dict()
        got[mode] = {"loss": float(result["loss"]), "acc": float(result["acc"]),
                     "head": state["5.weight"],
                     "sums": {k: float(v.double().sum()) for k, v in state.items()}}
    return got


def check_test_train_one_epoch(got):
    import torch
    import torch.nn.functional as F

    for mode in ("eval", "train"):
        model = given_start(mode)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.train()
        total, correct, seen = 0.0, 0, 0
        for x, y in given_toy_problem(1):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, correct, seen = total + loss.item() * len(y), correct + (logits.argmax(1) == y).sum().item(), seen + len(y)
        theirs, where = got[mode], f"(a model handed over in {mode} mode)"
        assert np.isclose(theirs["loss"], total / seen, rtol=1e-4), \
            f"mean loss per image {theirs['loss']:.5f}, expected {total / seen:.5f} {where}"
        assert np.isclose(theirs["acc"], correct / seen), f"accuracy {theirs['acc']:.3f}, expected {correct / seen:.3f} {where}"
        state = model.state_dict()
        assert np.allclose(theirs["head"], state["5.weight"].numpy(), atol=1e-4), \
            f"the weights after one epoch differ from one correct epoch {where}"
        for name, value in state.items():
            want = float(value.double().sum())
            assert np.isclose(theirs["sums"].get(name, np.nan), want, rtol=1e-3, atol=1e-3), \
                f"{name} differs from one correct epoch {where}"
