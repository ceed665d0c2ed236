"""`casestudy data fetch` misused: incomplete folders, damaged zips, missing paths, full or read-only disks.

Every case goes through the CLI: exit 0, or exit 2 with one line on stderr and no traceback; nothing
unverified is put in place or counted as present. The files come from a server on 127.0.0.1 (the
fixtures of test_download.py); nothing else is reached.
"""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from conftest import small_disk
from test_download import Course, loopback_only, png, server, zip_of  # noqa: F401  (fixtures)

from casestudy import cli, download

GAN = "fake/stylegan/psi-0.7"


@pytest.fixture
def course(tmp_path, server, monkeypatch):  # noqa: F811
    course = Course(tmp_path, server)
    monkeypatch.setenv("CASESTUDY_MANIFEST", str(course.path))
    return course


@pytest.fixture
def thousand(course):
    """The real zips' scale: 000000.zip of 1000 PNGs, no size or checksum published, on the mirror."""
    course.members = {f"{i:06d}.png": png(1000 + i, size=4) for i in range(1000)}
    course.server.files["/mirror/000000.zip"] = zip_of(course.members)
    gan = course.manifest["datasets"]["stylegan-psi-0.7"]
    gan.update(per_unit=1000, archives=[{"name": "000000.zip", "size": None, "sha256": None}])
    course.write()
    return course


def fetch(course, capsys, *args: str) -> tuple[int, str, str]:
    """Run `casestudy data fetch` on the course; return the exit status, stdout and stderr."""
    code = cli.main(["data", "fetch", "--data-root", str(course.data_root), "--quiet", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 0:
        assert err == ""
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    return code, out, err


def folder_of(members: dict[str, bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder


def images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []


def state(course) -> dict:
    path = course.root / ".fetch/state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# ---------------------------------------------------------------- a folder standing in for a zip


def test_a_folder_with_3_of_1000_images_is_reported_and_the_zip_fetched_instead(thousand, tmp_path, capsys):
    three = dict(list(thousand.members.items())[:3])
    mine = folder_of(three, tmp_path / "mine" / "000000")
    code, out, _ = fetch(thousand, capsys, "--from", str(mine.parent), "--real", "0", "--fake", "1000")
    assert code == 0
    assert (f"{mine}: 3 of 1000 images of 000000.zip; fetching it from {thousand.server.url}/mirror"
            in out)
    target = thousand.root / GAN / "000000"
    assert images(target) == sorted(thousand.members)
    assert (target / "000999.png").read_bytes() == thousand.members["000999.png"]
    assert len(state(thousand)["members"]["stylegan-psi-0.7 000000.zip"]) == 1000
    assert images(mine) == sorted(three)  # the user's folder is left as it was


def test_a_3_of_1000_folder_alone_fails_and_is_never_called_present(thousand, tmp_path, capsys):
    mine = folder_of(dict(list(thousand.members.items())[:3]), tmp_path / "mine" / "000000")
    for _ in range(2):
        code, out, err = fetch(thousand, capsys, "--source", "local", "--from", str(mine),
                               "--real", "0", "--fake", "1000")
        assert code == 2 and "already present 0" in out and "failed 1" in out
        assert "3 of 1000 images of 000000.zip" in err and "--from PATH" in err
        assert not (thousand.root / GAN / "000000").exists()
    assert "members" not in state(thousand) and thousand.server.log == []


def test_a_folder_completed_later_is_taken_on_the_second_run(thousand, tmp_path, capsys):
    members = list(thousand.members.items())
    mine = folder_of(dict(members[:3]), tmp_path / "mine" / "000000")
    local = ["--source", "local", "--from", str(mine.parent), "--real", "0", "--fake", "1000"]
    assert fetch(thousand, capsys, *local)[0] == 2
    folder_of(dict(members[3:]), mine)  # the user copies the rest
    code, out, _ = fetch(thousand, capsys, *local)
    assert code == 0 and "fetched 1, already present 0" in out
    assert "taken for it by count" in out  # no member list known: said, not hidden
    assert images(thousand.root / GAN / "000000") == sorted(thousand.members)
    code, out, _ = fetch(thousand, capsys, *local)
    assert code == 0 and "fetched 0, already present 1" in out
    assert thousand.server.log == []


def test_the_manifests_member_list_decides_what_a_folder_must_hold(course, tmp_path, capsys):
    course.manifest["datasets"]["stylegan-psi-0.7"]["archives"][1]["members"] = [
        "000003.png", "000004.png", "000005.png"]
    course.write()
    mine = folder_of({"000003.png": png(103), "000004.png": png(104), "000099.png": png(105)},
                     tmp_path / "mine" / "000003")  # three images, but not the three listed
    code, out, _ = fetch(course, capsys, "--from", str(mine), "--real", "0", "--fake", "6")
    assert code == 0 and f"{mine}: 2 of 3 images of 000003.zip; fetching it from" in out
    assert images(course.root / GAN / "000003") == ["000003.png", "000004.png", "000005.png"]
    (course.root / GAN / "000003" / "000005.png").unlink()  # a listed member gone: fetched again
    code, out, _ = fetch(course, capsys, "--from", str(mine), "--real", "0", "--fake", "6")
    assert code == 0 and "fetched 1, already present 1" in out


def test_an_earlier_partial_import_is_not_already_present(thousand, capsys):
    partial = folder_of(dict(list(thousand.members.items())[:3]), thousand.root / GAN / "000000")
    code, out, _ = fetch(thousand, capsys, "--real", "0", "--fake", "1000")
    assert code == 0 and "fetched 1, already present 0" in out
    assert images(partial) == sorted(thousand.members)


def test_a_folder_member_that_differs_from_the_verified_zip_falls_back(course, tmp_path, capsys):
    assert fetch(course, capsys, "--real", "0", "--fake", "6")[0] == 0
    target = course.root / GAN / "000003"
    with zipfile.ZipFile(io.BytesIO(course.zips["000003.zip"])) as z:
        mine = folder_of({name: z.read(name) for name in z.namelist()}, tmp_path / "mine" / "000003")
    (mine / "000004.png").write_bytes(png(4444))  # a valid image, but not the zip's
    os.rename(target, tmp_path / "kept")
    course.server.log.clear()
    code, out, _ = fetch(course, capsys, "--from", str(mine), "--real", "0", "--fake", "6")
    assert code == 0 and "000003/000004.png differs" in out and "differs from the verified copy" in out
    assert course.requests() == ["/mirror/000003.zip"]
    assert (target / "000004.png").read_bytes() == (tmp_path / "kept" / "000004.png").read_bytes()


def test_a_folder_with_a_broken_image_falls_back(thousand, tmp_path, capsys):
    mine = folder_of(thousand.members, tmp_path / "mine" / "000000")
    (mine / "000500.png").write_bytes(thousand.members["000500.png"][:40])  # cut short
    code, out, _ = fetch(thousand, capsys, "--from", str(mine.parent), "--real", "0", "--fake", "1000")
    assert code == 0 and "000000/000500.png is not a valid image (cannot identify image file)" in out
    assert "fetching it from http://127.0.0.1" in out
    assert (thousand.root / GAN / "000000" / "000500.png").read_bytes() == thousand.members["000500.png"]


# ---------------------------------------------------------------- damaged zips given with --from


def bad_crc(data: bytes, member: bytes) -> bytes:
    """The zip with one byte of a stored member's data changed: its CRC-32 no longer matches."""
    at = data.index(member) + len(member) // 2
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("damage", ["not a zip", "truncated", "bad CRC"])
def test_a_damaged_zip_in_from_is_skipped_to_the_next_source(course, tmp_path, capsys, damage):
    good = course.zips["000003.zip"]
    bad = {"not a zip": b"PK\x03\x04 this is no zip",
           "truncated": good[: len(good) // 2],
           "bad CRC": bad_crc(good, png(104))}[damage]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "000003.zip").write_bytes(bad)
    code, out, _ = fetch(course, capsys, "--from", str(folder / "000003.zip"), "--real", "0", "--fake", "6")
    assert code == 0 and f"fetching it from {course.server.url}/mirror" in out
    assert "not a valid zip" in out and "000003.zip" in out
    assert course.files() == [f for f in course.files() if f.startswith("fake")]
    assert images(course.root / GAN / "000003") == ["000003.png", "000004.png", "000005.png"]
    assert (course.root / GAN / "000003" / "000004.png").read_bytes() == png(104)


def test_a_damaged_zip_inside_a_from_folder_is_skipped_too(course, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "000003.zip").write_bytes(bad_crc(course.zips["000003.zip"], png(104)))
    code, out, _ = fetch(course, capsys, "--from", str(folder), "--real", "0", "--fake", "6")
    assert code == 0 and "Bad CRC-32" in out and "fetching it from" in out
    assert (course.root / GAN / "000003" / "000004.png").read_bytes() == png(104)


def test_a_damaged_zip_with_no_source_left_ends_with_one_line_and_exit_2(course, tmp_path, capsys):
    (tmp_path / "000003.zip").write_bytes(course.zips["000003.zip"][:100])
    code, out, err = fetch(course, capsys, "--source", "local", "--from", str(tmp_path / "000003.zip"),
                           "--real", "0", "--fake", "6")
    assert code == 2 and "not a valid zip" in err and "run the same command again" in err
    assert "--from PATH" in err  # what to do
    assert course.files() == [] and "pinned" not in state(course) and course.server.log == []


# ---------------------------------------------------------------- paths and disks


def test_a_missing_from_path_is_one_line_and_writes_nothing(course, tmp_path, capsys):
    code, _, err = fetch(course, capsys, "--from", str(tmp_path / "nowhere"), "--real", "3")
    assert code == 2 and f"--from {tmp_path / 'nowhere'}: no such folder or zip file" in err
    assert not course.data_root.exists() and course.server.log == []


def test_a_data_root_that_is_a_file_is_one_line(course, capsys):
    course.data_root.write_text("not a folder")
    code, _, err = fetch(course, capsys, "--real", "3", "--fake", "0")
    assert code == 2 and str(course.data_root) in err and "--data-root" in err
    assert course.data_root.read_text() == "not a folder"


def test_a_read_only_data_root_is_one_line(course, capsys):
    with small_disk(course.data_root, "ro,size=1m"):
        code, _, err = fetch(course, capsys, "--real", "3", "--fake", "3")
        assert code == 2 and "read-only file system" in err and "--data-root" in err
        assert course.server.log == []


def test_a_full_disk_stops_with_one_line_keeping_what_was_verified(course, capsys):
    big = {f"{i:06d}.png": png(300 + i, size=600) for i in range(3, 6)}  # ~1 MB each
    course.server.files["/mirror/000003.zip"] = zip_of(big)
    with small_disk(course.data_root, "size=2m"):
        code, _, err = fetch(course, capsys, "--real", "6", "--fake", "6")
        assert code == 2 and "is full" in err and "free some space" in err
        assert [f for f in course.files() if f.startswith("real")] == [
            f"real/ffhq/{i // 3 * 3:05d}/{i:05d}.png" for i in range(6)]  # verified: kept
        assert not (course.root / GAN / "000003").exists()  # nothing half-written in place
        assert not list(course.root.rglob("*.tmp")) and not list(course.root.rglob("*.extract"))


def test_a_folder_that_cannot_be_written_is_one_line(course, capsys, monkeypatch):
    course.data_root.mkdir()
    if os.geteuid() == 0:  # root writes anyway: refuse as the kernel would refuse anyone else
        def refuse(fetch, item):
            raise PermissionError(errno.EACCES, "Permission denied", str(fetch.work / "partial"))

        monkeypatch.setattr(download.Fetch, "partial", refuse)
    course.data_root.chmod(0o555)
    try:
        code, _, err = fetch(course, capsys, "--real", "3", "--fake", "0")
    finally:
        course.data_root.chmod(0o755)
    assert code == 2 and "permission denied" in err and "--data-root" in err
    assert course.files() == []
