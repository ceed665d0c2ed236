"""The exercise notebooks: solutions pass their tests, wrong answers lose the points.

Cells run in this process, skipping the ones tagged run-stage (they run whole stages and are
exercised by the autograder's tests), so every plausible mistake below is checked in seconds.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from autograder import hidden
from autograder.course import EXERCISES, SOLUTIONS, assignments
from autograder.notebooks import is_test

SOLUTION = re.compile(r"(### BEGIN SOLUTION\n)(.*?)(\n *### END SOLUTION)", re.S)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)


def body(new: str):
    """A mistake that replaces the whole solution region by `new` (indented as written)."""
    return lambda src: SOLUTION.sub(lambda m: m.group(1) + new.strip("\n") + m.group(3), src, count=1)


def swap(old: str, new: str):
    """A mistake that replaces one piece of the solution."""
    def mutate(src: str) -> str:
        assert old in src, f"the mistake's text {old!r} is no longer in the solution"
        return src.replace(old, new, 1)
    return mutate


MISTAKES = {  # (assignment, solution cell): [(mistake, how to make it)]
    ("01_data", "label_of"): [
        ("the original ImageFolder bug: alphabetical numbering",
         swap("return LABELS[folder]", "return sorted(LABELS).index(folder)")),
        ("'fake' anywhere in the path", body('    return 1 if "fake" in str(path) else 0')),
        ("the farthest folder wins", swap("reversed(Path(path).parts[:-1])", "Path(path).parts[:-1]")),
    ],
    ("01_data", "stratified_split"): [
        ("not stratified: one shuffle of everything", body('''
    order = rng.permutation(len(labels))
    n_train, n_val = round(0.70 * len(labels)), round(0.15 * len(labels))
    splits[order[:n_train]] = "train"
    splits[order[n_train:n_train + n_val]] = "val"
    splits[order[n_train + n_val:]] = "test"''')),
        ("not shuffled", swap("rng.permutation(np.flatnonzero(labels == label))",
                              "np.flatnonzero(labels == label)")),
        ("not seeded", swap("rng.permutation(", "np.random.permutation(")),
    ],
    ("02_eda", "mean_colour"): [
        ("B, G, R order", swap("rgb.mean(axis=(0, 1))", "rgb.mean(axis=(0, 1))[::-1]")),
        ("mean over the wrong axis", swap("rgb.mean(axis=(0, 1))", "rgb.mean(axis=2)")),
    ],
    ("02_eda", "luminance"): [
        ("the weights of R and B swapped", swap("rgb @ LUMA", "rgb @ LUMA[::-1]")),
        ("a plain average", swap("rgb @ LUMA", "rgb.mean(axis=2)")),
    ],
    ("02_eda", "fft_magnitude"): [
        ("power instead of magnitude", swap("np.abs(np.fft.fft2(g)).mean()",
                                            "(np.abs(np.fft.fft2(g)) ** 2).mean()")),
        ("an orthonormal FFT", swap("np.fft.fft2(g)", 'np.fft.fft2(g, norm="ortho")')),
    ],
    ("02_eda", "radial_power_spectrum"): [
        ("magnitude instead of power", swap("** 2 / (h * w) ** 2", "/ (h * w)")),
        ("rings counted on the shifted spectrum", swap("np.abs(np.fft.fft2(g))",
                                                       "np.abs(np.fft.fftshift(np.fft.fft2(g)))")),
        ("the sum of each ring, not its mean", swap(" / np.bincount(rings)", "")),
    ],
    ("03_train", "make_detector"): [
        ("one output", swap("fc.in_features, 2)", "fc.in_features, 1)")),
        ("ImageNet's 1000 classes kept", swap("model.fc = nn.Linear(model.fc.in_features, 2)", "pass")),
        ("a softmax in the head", swap("nn.Linear(model.fc.in_features, 2)",
                                       "nn.Sequential(nn.Linear(512, 2), nn.Softmax(dim=1))")),
    ],
    ("03_train", "train_one_epoch"): [
        ("gradients never cleared", swap("optimizer.zero_grad()", "pass")),
        ("no model.train()", swap("model.train()", "pass")),
        ("every batch counted as full", swap("loss.item() * len(y)", "loss.item() * loader.batch_size")),
    ],
    ("04_evaluate", "confusion_counts"): [
        ("real taken as positive", body('''
    return {"tp": int(((labels == 0) & (preds == 0)).sum()),
            "fp": int(((labels == 1) & (preds == 0)).sum()),
            "tn": int(((labels == 1) & (preds == 1)).sum()),
            "fn": int(((labels == 0) & (preds == 1)).sum())}''')),
        ("false positives and negatives swapped", body('''
    return {"tp": int(((labels == 1) & (preds == 1)).sum()),
            "fp": int(((labels == 1) & (preds == 0)).sum()),
            "tn": int(((labels == 0) & (preds == 0)).sum()),
            "fn": int(((labels == 0) & (preds == 1)).sum())}''')),
    ],
    ("04_evaluate", "precision_recall_f1"): [
        ("precision and recall swapped", swap("precision, recall, f1", "recall, precision, f1")),
        ("F1 as the arithmetic mean", swap("2 * precision * recall / (precision + recall)",
                                           "(precision + recall) / 2")),
    ],
    ("05_tsne", "penultimate_embeddings"): [
        ("the logits", body("    model.eval()\n    with torch.no_grad():\n"
                            "        return model(x).cpu().numpy()")),
        ("batch statistics: no model.eval()", swap("model.eval()", "pass")),
        ("the feature map before pooling", swap("torch.flatten(m.avgpool(h), 1)", "torch.flatten(h, 1)")),
    ],
    ("06_gradcam", "cam_from"): [
        ("no ReLU", swap("np.maximum((weights[:, :, None, None] * activations).sum(axis=1), 0)",
                         "(weights[:, :, None, None] * activations).sum(axis=1)")),
        ("absolute value instead of ReLU", swap(
            "np.maximum((weights[:, :, None, None] * activations).sum(axis=1), 0)",
            "np.abs((weights[:, :, None, None] * activations).sum(axis=1))")),
        ("gradient x activation, not averaged", swap("weights = gradients.mean(axis=(2, 3))",
                                                     "weights = gradients.mean(axis=1)")),
    ],
    ("07_report", "wilson_interval"): [
        ("the normal (Wald) interval", body('''
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = k / n
    half = z * np.sqrt(p * (1 - p) / n)
    return p - half, p + half''')),
        ("a one-sided z", swap("norm.ppf(1 - (1 - confidence) / 2)", "norm.ppf(confidence)")),
    ],
}


def cells(path):
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and "run-stage" not in c.metadata.get("tags", [])]


def grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def run(source: str, namespace: dict) -> str:
    """Execute a cell; return "" if it passed, else the error."""
    try:
        exec(compile(source, "<cell>", "exec"), namespace)
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return ""


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """Each solution notebook's cells run in a namespace of its own, tests included."""
    import os

    os.environ["CASESTUDY_GRADING"] = "1"
    workdir = tmp_path_factory.mktemp("solutions")
    old = os.getcwd()
    os.chdir(workdir)
    namespaces, results = {}, {}
    try:
        for name in assignments():
            namespace = {"__name__": f"notebook_{name}"}
            for cell in cells(SOLUTIONS / name / f"{name}.ipynb"):
                error = run(cell.source, namespace)
                results[(name, grade_id(cell) or cell.source[:40])] = error
            namespaces[name] = namespace
    finally:
        os.chdir(old)
    return namespaces, results


def test_every_mistake_list_names_a_real_solution_cell():
    found = {(name, grade_id(c)) for name in assignments()
             for c in cells(SOLUTIONS / name / f"{name}.ipynb")
             if c.metadata.get("nbgrader", {}).get("solution")}
    assert found == set(MISTAKES), "each autograded part has its plausible mistakes listed"
    assert all(len(v) >= 2 for v in MISTAKES.values())


def test_solutions_pass_their_own_tests(solved):
    _, results = solved
    failed = {key: error for key, error in results.items() if error}
    assert not failed, failed
    assert sum(1 for name, gid in results if gid.startswith("test_")) == len(MISTAKES)


def hidden_tests_of(name: str) -> dict:
    return hidden.load(SOLUTIONS, name)


@pytest.mark.parametrize("name", assignments())
def test_every_test_cell_has_its_hidden_test(name, solved):
    nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    test_ids = {grade_id(c) for c in nb.cells if is_test(c)}
    assert set(hidden_tests_of(name)) == test_ids, "one run_/check_ pair per test cell, and no other"
    for test in hidden_tests_of(name).values():
        verdict = hidden.judge_here(test, solved[0][name])
        assert verdict.passed, f"the solution fails its hidden test: {verdict.line()}"


@pytest.mark.parametrize("key,mistake", [(k, m) for k, ms in MISTAKES.items() for m in ms],
                         ids=[f"{k[1]}: {m[0]}" for k, ms in MISTAKES.items() for m in ms])
def test_hidden_tests_catch_the_mistake(solved, key, mistake):
    name, solution_id = key
    description, mutate = mistake
    namespace = solved[0][name]
    notebook = cells(SOLUTIONS / name / f"{name}.ipynb")
    solution = next(c for c in notebook if grade_id(c) == solution_id)
    test = next(c for c in notebook[notebook.index(solution):] if is_test(c))
    wrong = mutate(solution.source)
    assert wrong != solution.source
    try:
        assert not run(wrong, namespace), "the wrong answer itself must run"
        verdict = hidden.judge_here(hidden_tests_of(name)[grade_id(test)], namespace, 2)
        assert not verdict.passed, f"{grade_id(test)}'s hidden test passed with: {description}"
        assert verdict.points == 0 and verdict.message, verdict
    finally:
        assert not run(solution.source, namespace)


@pytest.mark.parametrize("name", assignments())
def test_untouched_exercise_fails_every_test(name, tmp_path, monkeypatch):
    monkeypatch.setenv("CASESTUDY_GRADING", "1")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"exercise_{name}"}
    outcomes = [(grade_id(c), run(c.source, namespace)) for c in cells(EXERCISES / name / f"{name}.ipynb")]
    tests = [(gid, error) for gid, error in outcomes if gid.startswith("test_")]
    assert tests and all(error for _, error in tests), tests
    assert all("NotImplementedError" in error or "is not defined" in error for _, error in tests), tests


@pytest.mark.parametrize("name", assignments())
def test_each_notebook_has_a_switch_and_written_questions(name):
    nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
    switch = [c for c in nb.cells if "switch" in c.metadata.get("tags", [])]
    assert len(switch) == 1 and "USE_REAL_DATA = False" in switch[0].source
    written = [c for c in nb.cells if c.cell_type == "markdown"
               and c.metadata.get("nbgrader", {}).get("grade")]
    assert written and all(c.metadata.nbgrader.points > 0 for c in written)


def visible(test_source: str) -> str:
    """What a student sees of a test cell (and what `autograder check` runs)."""
    return HIDDEN.sub("", test_source)


def caught_by_visible_tests(solved) -> tuple[list[str], list[str]]:
    """Run each known mistake against the visible tests only; return (caught, missed)."""
    caught, missed = [], []
    for (name, solution_id), mistakes in MISTAKES.items():
        namespace = solved[0][name]
        notebook = cells(SOLUTIONS / name / f"{name}.ipynb")
        solution = next(c for c in notebook if grade_id(c) == solution_id)
        test = next(c for c in notebook[notebook.index(solution):] if is_test(c))
        for description, mutate in mistakes:
            try:
                assert not run(mutate(solution.source), namespace), "the wrong answer itself must run"
                error = run(visible(test.source), namespace)
            finally:
                assert not run(solution.source, namespace)
            (caught if error else missed).append(f"{solution_id}: {description}")
    return caught, missed


def test_visible_tests_catch_most_mistakes(solved):
    """`autograder check` should warn a student before submission about most known mistakes."""
    caught, missed = caught_by_visible_tests(solved)
    total = len(caught) + len(missed)
    print(f"visible tests catch {len(caught)} of {total} known mistakes; missed: {missed}")
    assert len(missed) <= 0.1 * total, f"the visible tests miss {len(missed)} of {total}: {missed}"
