"""casestudy.book: the run the book's chapters share, and running only the stages that are missing."""

from __future__ import annotations

import dataclasses

import pytest

from casestudy import CaseStudyError, book, stages
from casestudy.config import save_config


@pytest.fixture
def repo(tmp_path):
    """A repository-like folder: casestudy/ and book/ side by side."""
    (tmp_path / "casestudy").mkdir()
    (tmp_path / "book").mkdir()
    return tmp_path


def test_book_root_is_the_repository_when_run_from_book(repo, tmp_path):
    assert book.book_root(repo / "book") == repo
    assert book.book_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"


@pytest.mark.parametrize("choice, name", [("", "book"), ("synthetic", "book"), ("course", "book-course")])
def test_book_config_names_the_data(repo, choice, name):
    config = book.book_config(choice, root=repo)
    assert config.name == name
    assert config.run_dir == repo / "runs" / name
    if name == "book":  # its own data root: make demo's synthetic set is left alone
        assert config.data == "synthetic" and config.data_root == str(repo / "data" / "book")
    else:
        assert config.data == str(repo / "data" / "raw") and config.device == "auto"


def test_book_config_takes_a_folder_or_explains(repo, tmp_path, monkeypatch):
    folder = tmp_path / "faces"
    folder.mkdir()
    monkeypatch.setenv(book.DATA_VARIABLE, str(folder))
    config = book.book_config(root=repo)
    assert (config.name, config.data) == ("book-faces", str(folder))
    with pytest.raises(CaseStudyError, match=book.DATA_VARIABLE):
        book.book_config(str(tmp_path / "missing"), root=repo)


def test_a_model_is_reused_only_with_the_same_training_settings(repo):
    config = book.book_config(root=repo)
    assert not book.has_run(config, "train")
    save_config(config, config.run_dir / "config.yaml")
    (config.run_dir / "checkpoint.pt").write_bytes(b"")
    assert book.has_run(config, "train")
    assert book.has_run(dataclasses.replace(config, tsne_perplexity=5.0, device="cpu"), "train")
    assert not book.has_run(dataclasses.replace(config, epochs=config.epochs + 1), "train")
    assert not book.has_run(dataclasses.replace(config, data="/elsewhere/faces"), "train")


def test_ensure_runs_what_is_missing_in_order(repo, monkeypatch):
    config = book.book_config(root=repo)
    ran = []

    def fake_stage(config, stage, progress=False):
        ran.append(stage)
        out = config.run_dir / stages.stage(stage).output
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("")
        if stage == "train":
            save_config(config, config.run_dir / "config.yaml")

    monkeypatch.setattr(book, "run_stage", fake_stage)
    monkeypatch.setattr(book, "has_run", lambda c, s: (c.run_dir / stages.stage(s).output).is_file()
                        and (s != "train" or (c.run_dir / "config.yaml").is_file()))
    assert book.ensure(config, "tsne") == ["train", "tsne"]
    assert book.ensure(config, "report") == ["eda", "evaluate", "gradcam", "report"]
    assert book.ensure(config, "report", "tsne") == []
    assert ran == ["train", "tsne", "eda", "evaluate", "gradcam", "report"]
    with pytest.raises(CaseStudyError, match="unknown stage"):
        book.ensure(config, "deploy")
