"""Cells that raise or time out are reported, and a solution that calls the package's own answer
is found. The graded cases (a whole class, one grading batch) are in test_autograder.py."""

from __future__ import annotations

import re

import nbformat
import pytest

from autograder.check import check
from autograder.course import EXERCISES, SOLUTIONS, assignments
from autograder.reference import FORBIDDEN, reference_uses, scoring_cell

SOLUTION = re.compile(r"### BEGIN SOLUTION\n.*?### END SOLUTION", re.S)


def eda_with(answer: str, setup: str = "") -> nbformat.NotebookNode:
    """02_eda's release with luminance answered by `answer` (and `setup` added to the first cell)."""
    nb = nbformat.read(EXERCISES / "02_eda" / "02_eda.ipynb", as_version=4)
    solved = nbformat.read(SOLUTIONS / "02_eda" / "02_eda.ipynb", as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in solved.cells}
    for mine in nb.cells:
        grade_id = mine.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "luminance":
            mine.source = SOLUTION.sub(answer.strip(), by_id[grade_id].source)
        if grade_id == "given-01":  # the setup cell's imports
            mine.source += "\n" + setup
    return nb


@pytest.mark.parametrize("setup, answer", [
    ("", "    from casestudy.eda import luminance as lum\n    return lum(rgb)"),
    ("", "    import casestudy.eda as e\n    return e.luminance(rgb)"),
    ("", "    from casestudy import eda as _eda\n    return _eda.luminance(rgb)"),
    ("", "    import casestudy\n    return casestudy.eda.luminance(rgb)"),
    ("from casestudy import eda", "    return eda.luminance(rgb)"),  # the import elsewhere
    ("from casestudy import eda\nf = eda.luminance", "    return f(rgb)"),
    ("from casestudy import eda", "    return eda.grey(rgb)"),
    ("", "    from casestudy.eda import grey\n    return grey(rgb)"),
])
def test_the_package_answer_is_found_however_it_is_reached(setup, answer):
    found = reference_uses("02_eda", eda_with(answer, setup))
    assert [u.grade_id for u in found] == ["luminance"], found
    assert found[0].reason().startswith("luminance: uses casestudy.eda's answer (casestudy.eda.")
    assert found[0].reason().endswith("; scored 0")


@pytest.mark.parametrize("answer", [
    '    from casestudy import eda\n    return getattr(eda, "lumi" + "nance")(rgb)',
    '    from casestudy import eda\n    return vars(eda)["luminance"](rgb)',
    '    from casestudy import eda\n    return eda.__dict__["luminance"](rgb)',
    '    import importlib\n    return importlib.import_module("casestudy.eda").luminance(rgb)',
    '    return __import__("casestudy.eda").eda.luminance(rgb)',
    '    import importlib\n    return importlib.import_module("case" + "study.eda").luminance(rgb)',
])
def test_a_dynamic_lookup_on_the_package_is_flagged(answer):
    found = reference_uses("02_eda", eda_with(answer))
    assert [u.grade_id for u in found] == ["luminance"], found


def test_a_constant_getattr_names_the_function():
    found = reference_uses("02_eda", eda_with('    from casestudy import eda\n'
                                              '    return getattr(eda, "luminance")(rgb)'))
    assert [u.name for u in found] == ["casestudy.eda.luminance"]


@pytest.mark.parametrize("setup, answer", [
    ("from casestudy import data", "    return rgb @ np.array([0.299, 0.587, 0.114])"),  # setup's import
    ("from casestudy import eda", "    return rgb @ LUMA"),
    ("", "    from casestudy.eda import mean_colour\n    return rgb @ LUMA"),  # another part's function
    ("", "    luminance = 1\n    return rgb @ LUMA"),
])
def test_other_uses_of_the_package_are_not_flagged(setup, answer):
    assert reference_uses("02_eda", eda_with(answer, setup)) == []


def test_the_solutions_and_releases_use_no_reference_answer_and_every_part_is_tested():
    for name in assignments():
        for folder in (SOLUTIONS, EXERCISES):
            nb = nbformat.read(folder / name / f"{name}.ipynb", as_version=4)
            assert reference_uses(name, nb) == [], (folder, name)
    for name, grade_id in FORBIDDEN:
        nb = nbformat.read(SOLUTIONS / name / f"{name}.ipynb", as_version=4)
        assert scoring_cell(nb, grade_id) == f"test_{grade_id}", (name, grade_id)


def test_precision_from_sklearn_is_flagged_in_its_part_only():
    nb = nbformat.read(SOLUTIONS / "04_evaluate" / "04_evaluate.ipynb", as_version=4)
    cell = next(c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "precision_recall_f1")
    cell.source = SOLUTION.sub("from sklearn.metrics import precision_recall_fscore_support as prf\n"
                               "    precision, recall, f1, _ = prf(labels, preds, average='binary')",
                               cell.source)
    found = reference_uses("04_evaluate", nb)
    assert [(u.grade_id, u.name) for u in found] == [
        ("precision_recall_f1", "sklearn.metrics.precision_recall_fscore_support")]


def test_check_names_each_cell_that_raised_or_timed_out(tmp_path, capsys):
    cells = ["x = 1", "undefined_name", "import time\ntime.sleep(60)", "print(x)"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, path)
    check(path, timeout=3)
    out = capsys.readouterr().out
    assert ("cell 1 raised NameError: name 'undefined_name' is not defined — results after it may be "
            "incomplete") in out
    assert "cell 2 timed out — results after it may be incomplete" in out
    assert "warning: cell(s) 1, 2 raised an error or timed out" in out


def test_check_warns_of_a_part_answered_by_the_package(tmp_path, capsys):
    nb = eda_with("from casestudy.eda import luminance as lum\n    return lum(rgb)")
    nb.cells = nb.cells[:9]  # up to luminance's test: enough, and quick
    path = tmp_path / "02_eda.ipynb"
    nbformat.write(nb, path)
    check(path, timeout=60)
    out = capsys.readouterr().out
    assert ("warning: luminance: uses casestudy.eda's answer (casestudy.eda.luminance): grading scores "
            "that part 0") in out


def test_feedback_shows_a_hidden_tests_result_never_its_source():
    import nbformat

    from autograder.feedback import HideHiddenTests

    cell = nbformat.v4.new_code_cell(
        'assert f(1) == 1, "visible"\n### BEGIN HIDDEN TESTS\nassert f(2) == 4, "twice two"\n'
        "### END HIDDEN TESTS\n",
        metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": "test_f", "points": 2}})
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="twice two",
                                           traceback=['assert f(2) == 4, "twice two"'])]
    page, _ = exporter_with(HideHiddenTests).from_notebook_node(nbformat.v4.new_notebook(cells=[cell]))
    assert "twice two" not in page.replace("AssertionError: twice two", "")  # neither source nor traceback
    assert "visible" in page and "AssertionError: twice two" in page  # the visible test, the result


def exporter_with(preprocessor):
    from nbconvert.exporters import HTMLExporter

    exporter = HTMLExporter()
    exporter.register_preprocessor(preprocessor)  # a class, as nbgrader registers its list
    return exporter
