"""Hidden tests of 05_tsne (format: autograder/hidden.py). run_* runs in the student's kernel;
check_* judges its results in the grader, against casestudy's own embeddings."""

import numpy as np


def given_model_and_batch():
    """A seeded model whose BatchNorm running statistics differ from any batch's own, left in
    train mode, and a batch for it."""
    import torch

    from casestudy.model import build_model

    torch.manual_seed(1)
    net = build_model()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.copy_(torch.rand(bn.running_mean.shape, generator=g) - 0.5)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) * 1.5 + 0.5)
    net.train()
    return net, torch.randn(6, 3, 64, 64, generator=g)


def run_test_penultimate_embeddings():
    import torch

    net, x = given_model_and_batch()
    all_six = penultimate_embeddings(net, x)
    one = penultimate_embeddings(net, x[:1])
    net.eval()
    with torch.no_grad():
        logits = net(x)
    return {"all": all_six, "one": one, "type": type(all_six).__module__ + "." + type(all_six).__name__,
            "fc": type(net.fc).__name__, "logits": logits}


def check_test_penultimate_embeddings(got):
    import torch

    from casestudy.model import penultimate

    net, x = given_model_and_batch()
    net.eval()
    with torch.no_grad():
        want, logits = penultimate(net, x).numpy(), net(x).numpy()
    assert got["type"] == "numpy.ndarray", f"return a NumPy array, not {got['type']}"
    assert np.shape(got["all"]) == (6, 512), f"6 images gave embeddings of shape {np.shape(got['all'])}: expected (6, 512)"
    assert np.allclose(got["all"], want, atol=1e-4), "the pooled 512-d features in eval mode"
    assert np.allclose(got["one"], want[:1], atol=1e-4), "one image's embedding must not depend on its batch"
    assert got["fc"] == "Linear" and np.allclose(got["logits"], logits, atol=1e-4), "leave the model as it was"
