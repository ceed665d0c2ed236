"""Where the exercise notebooks keep data/ and runs/: shared beside sibling assignment folders."""

from casestudy.runtime import notebook_roots


def test_sibling_assignment_folders_share_the_parents_data_and_runs(tmp_path):
    for name in ("01_data", "03_train", "04_evaluate"):
        (tmp_path / name).mkdir()
    assert notebook_roots(tmp_path / "03_train") == ("../data", "../runs")


def test_a_lone_assignment_folder_keeps_its_own(tmp_path):
    (tmp_path / "03_train").mkdir()
    (tmp_path / "notes").mkdir()
    assert notebook_roots(tmp_path / "03_train") == ("data", "runs")


def test_any_other_folder_keeps_its_own(tmp_path, monkeypatch):
    for name in ("01_data", "ag-work-x1"):
        (tmp_path / name).mkdir()
    assert notebook_roots(tmp_path / "ag-work-x1") == ("data", "runs")
    assert notebook_roots(tmp_path) == ("data", "runs")
    monkeypatch.chdir(tmp_path / "01_data")
    (tmp_path / "02_eda").mkdir()
    assert notebook_roots() == ("../data", "../runs"), "the cwd is the default"
