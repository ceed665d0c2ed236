"""`casestudy data fetch`: every test serves its own files from 127.0.0.1 and reaches nothing else."""

from __future__ import annotations

import hashlib
import http.server
import io
import ipaddress
import json
import shutil
import socket
import sys
import threading
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from casestudy import CaseStudyError, cli, download, sources
from casestudy.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
QUOTA_PAGE = (b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
              b"<p>Too many users have viewed or downloaded this file recently.</p></body></html>")
SIGN_IN_PAGE = (b"<html><head><title>Google Drive</title></head><body><a href='https://accounts.google.com/"
                b"ServiceLogin'>Sign in</a></body></html>")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any test that would open a connection to, or look up, anything but 127.0.0.1."""
    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(self, address):
        if isinstance(address, tuple) and not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"a test tried to reach {address}")
        return connect(self, address)

    def guarded_lookup(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"a test tried to look up {host}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)


# ---------------------------------------------------------------- a local server


class Handler(http.server.BaseHTTPRequestHandler):
    """Serve `server.files` with Range support; cut a transfer once; serve HTML; log each request."""

    def do_GET(self):  # noqa: N802
        server = self.server
        server.log.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        if isinstance(body, str):  # an HTML page in place of the file
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = server.cut_once.pop(self.path, None)
        if cut is not None:  # promise the whole file, send part of it, hang up
            self.wfile.write(body[start:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.log, httpd.cut_once = {}, [], {}
    httpd.url = f"http://127.0.0.1:{httpd.server_port}"
    httpd.handle_error = lambda request, address: None  # a client hanging up early is no error here
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


# ---------------------------------------------------------------- a tiny course


def png(seed: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


class Course:
    """A manifest like the real one, at toy scale: 2 folders of 3 real images, 2 zips of 3 fakes."""

    PER_UNIT = 3

    def __init__(self, tmp_path: Path, server):
        self.server, self.tmp = server, tmp_path
        self.data_root = tmp_path / "data"
        self.root = self.data_root / "raw"
        self.real = {i: png(i, size=600 if i == 0 else 16) for i in range(6)}  # 0: 1 MB, for cuts
        self.zips = {f"{start:06d}.zip": zip_of({f"{i:06d}.png": png(100 + i)
                                                 for i in range(start, start + 3)}) for start in (0, 3)}
        self.metadata = json.dumps({str(i): {"category": "training", "image": {
            "file_url": f"https://drive.google.com/uc?id=real{i}",
            "file_path": f"images1024x1024/{i // 3 * 3:05d}/{i:05d}.png",
            "file_size": len(data), "file_md5": hashlib.md5(data).hexdigest(),
        }} for i, data in self.real.items()}).encode()
        self.serve("/mirror")
        self.manifest = yaml.safe_load((ROOT / "data_manifest.yaml").read_text())
        ffhq, gan = self.manifest["datasets"]["ffhq"], self.manifest["datasets"]["stylegan-psi-0.7"]
        ffhq.update(per_unit=3, units=2, approx_bytes_per_image=1000)
        ffhq["sources"] = [{"kind": "http", "url": f"{server.url}/mirror"}]
        gan.update(per_unit=3, approx_bytes_per_archive=3000, sources=[
            {"kind": "http", "url": f"{server.url}/mirror"}])
        first = self.zips["000000.zip"]
        gan["archives"] = [
            {"name": "000000.zip", "size": len(first), "sha256": hashlib.sha256(first).hexdigest()},
            {"name": "000003.zip", "size": None, "sha256": None}]  # unpublished, as NVIDIA's are
        meta = self.manifest["files"]["ffhq-metadata"]
        meta.update(size=len(self.metadata), md5=hashlib.md5(self.metadata).hexdigest(),
                    sources=[{"kind": "http", "url": f"{server.url}/mirror"}])
        self.manifest["collections"]["course"].update(default_real=6, default_fake=6)
        self.write()

    def serve(self, prefix: str) -> None:
        files = self.server.files
        files[f"{prefix}/ffhq-dataset-v2.json"] = self.metadata
        for i, data in self.real.items():
            files[f"{prefix}/images1024x1024/{i // 3 * 3:05d}/{i:05d}.png"] = data
        for name, data in self.zips.items():
            files[f"{prefix}/{name}"] = data

    def write(self) -> Path:
        self.path = self.tmp / "manifest.yaml"
        self.path.write_text(yaml.safe_dump(self.manifest, sort_keys=False))
        return self.path

    def fetch(self, **kwargs):
        """Fetch; return the summary, also when some items failed (the CLI then exits with 2)."""
        kwargs.setdefault("progress", False)
        try:
            return download.fetch_data("course", data_root=str(self.data_root),
                                       manifest_file=str(self.path), **kwargs)
        except download.FetchIncomplete as err:
            return err.summary

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*")
                      if p.is_file() and ".fetch" not in p.parts)

    def requests(self) -> list[str]:
        return [path for path, _ in self.server.log]


EXPECTED = ([f"fake/stylegan/psi-0.7/000000/{i:06d}.png" for i in range(3)]
            + [f"fake/stylegan/psi-0.7/000003/{i:06d}.png" for i in range(3, 6)]
            + [f"real/ffhq/{i // 3 * 3:05d}/{i:05d}.png" for i in range(6)])


@pytest.fixture
def course(tmp_path, server):
    return Course(tmp_path, server)


# ---------------------------------------------------------------- the manifest


def test_the_repository_manifest_is_valid_and_names_torchvisions_weights():
    from torchvision.models import ResNet18_Weights

    manifest = load_manifest(ROOT / "data_manifest.yaml")
    weights = manifest["files"]["resnet18-imagenet"]
    assert weights["name"] == ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    assert weights["sha256"].startswith(weights["name"].split("-")[1].split(".")[0])
    course = manifest["collections"]["course"]
    assert manifest["datasets"][course["real"]]["label"] == "real"
    assert len(manifest["datasets"][course["fake"]]["archives"]) * 1000 == course["default_fake"] == 10000


@pytest.mark.parametrize("old,new,named", [
    ("sha256: null}", "sha265: null}", "sha265"),
    ("    licence: CC BY-NC 4.0, NVIDIA", "    licens: CC BY-NC 4.0, NVIDIA", "licens"),
    ("- {kind: http, url:", "- {kind: http, ur:", "ur"),
    ("  - kind: drive\n", "  - kind: gdrive\n", "gdrive"),
    ("    per_unit: 1000 ", "    per_unit: many ", "per_unit"),
])
def test_a_typo_in_the_manifest_is_a_one_line_error_naming_the_key(tmp_path, old, new, named):
    text = (ROOT / "data_manifest.yaml").read_text()
    assert old in text
    (tmp_path / "m.yaml").write_text(text.replace(old, new, 1))
    with pytest.raises(CaseStudyError) as err:
        load_manifest(tmp_path / "m.yaml")
    assert named in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- fetching over HTTP


def test_fetch_lays_out_a_dataset_that_indexes_and_says_what_next(course, capsys):
    summary = course.fetch()
    assert course.files() == EXPECTED
    assert len(summary.fetched) == 6 + 2 + 1 and not summary.failed  # images, zips, metadata
    assert (course.root / "fake/stylegan/psi-0.7/000000/000001.png").read_bytes() == png(101)
    out = capsys.readouterr().out
    assert "fetched 9, already present 0, failed 0" in out and "next: casestudy run --config course" in out
    pinned = json.loads((course.root / ".fetch/state.json").read_text())["pinned"]
    expected = hashlib.sha256(course.zips["000003.zip"]).hexdigest()
    assert pinned["stylegan-psi-0.7/000003.zip"]["sha256"] == expected
    assert not list((course.root / ".fetch/partial").rglob("*.part"))
    assert cli.main(["data", "index", "--data", str(course.root), "--data-root", str(course.data_root),
                     "--quiet"]) == 0
    index = pd.read_csv(course.root / "index.csv")
    assert (index.status == "ok").all() and index.label.value_counts().to_dict() == {0: 6, 1: 6}


def test_a_second_run_sends_no_request(course, capsys):
    course.fetch()
    course.server.log.clear()
    summary = course.fetch()
    assert course.server.log == [] and summary.fetched == [] and len(summary.present) == 8
    assert "fetched 0, already present 8, failed 0" in capsys.readouterr().out


def test_real_and_fake_choose_how_many_whole_folders(course):
    course.fetch(real=2, fake=4)
    assert [f for f in course.files() if f.startswith("real")] == EXPECTED[6:9]
    assert [f for f in course.files() if f.startswith("fake")] == EXPECTED[:6]
    with pytest.raises(CaseStudyError, match="at most"):
        course.fetch(real=7)


BIG = "/mirror/images1024x1024/00000/00000.png"


def test_a_cut_transfer_resumes_with_a_range_request(course):
    course.server.cut_once[BIG] = 100_000
    course.fetch()
    tries = [rng for path, rng in course.server.log if path == BIG]
    assert tries[0] is None and len(tries) == 2
    resumed_at = int(tries[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 100_000  # what had arrived, less at most the chunk being read
    assert course.files() == EXPECTED
    assert (course.root / "real/ffhq/00000/00000.png").read_bytes() == course.real[0]


def test_an_interrupted_run_keeps_its_bytes_and_the_next_run_resumes(course, monkeypatch):
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    course.server.cut_once[BIG] = 100_000
    summary = course.fetch()
    assert list(summary.failed) == ["ffhq 00000/00000.png"]
    assert not (course.root / "real/ffhq/00000/00000.png").exists()  # never a partial file in place
    kept = (course.root / ".fetch/partial/images1024x1024/00000/00000.png.part").stat().st_size
    assert 0 < kept <= 100_000
    course.server.log.clear()
    summary = course.fetch()
    assert course.server.log == [(BIG, f"bytes={kept}-")]  # only the missing bytes of the one file
    assert course.files() == EXPECTED and not summary.failed


def test_a_bad_checksum_is_retried_then_named_and_the_next_source_tried(course, capsys):
    good = course.server.url + "/good"
    course.serve("/good")
    course.server.files["/mirror/images1024x1024/00000/00002.png"] = png(999)  # other bytes, same name
    course.manifest["datasets"]["ffhq"]["sources"].append({"kind": "http", "url": good})
    course.write()
    summary = course.fetch()
    bad = [p for p in course.requests() if p.endswith("00000/00002.png")]
    assert bad == ["/mirror/images1024x1024/00000/00002.png"] * download.ATTEMPTS + [
        "/good/images1024x1024/00000/00002.png"]
    assert course.files() == EXPECTED and not summary.failed
    # with no good source left: a clear error naming the file and the source
    shutil.rmtree(course.root / "real")
    course.manifest["datasets"]["ffhq"]["sources"].pop()
    course.write()
    summary = course.fetch()
    why = summary.failed["ffhq 00000/00002.png"]
    assert "checksum mismatch for ffhq 00000/00002.png" in why and course.server.url + "/mirror" in why
    assert "failed ffhq 00000/00002.png: checksum mismatch" in capsys.readouterr().out
    assert not (course.root / "real/ffhq/00000/00002.png").exists()
    assert not list((course.root / ".fetch/partial").rglob("00002.png.part"))


def test_an_unpublished_checksum_is_pinned_on_first_fetch_and_checked_after(course):
    course.fetch(real=3, fake=6)
    shutil.rmtree(course.root / "fake/stylegan/psi-0.7/000003")
    course.server.files["/mirror/000003.zip"] = zip_of({"000003.png": png(7)})  # changed upstream
    summary = course.fetch()
    why = summary.failed["stylegan-psi-0.7 000003.zip"]
    assert "checksum mismatch for stylegan-psi-0.7 000003.zip" in why


def test_an_html_page_is_never_saved_as_an_image(course):
    course.server.files["/mirror/images1024x1024/00003/00004.png"] = QUOTA_PAGE.decode()
    summary = course.fetch()
    why = summary.failed["ffhq 00003/00004.png"]
    assert "quota" in why and "--source kaggle:OWNER/NAME" in why and "\n" not in why
    assert not (course.root / "real/ffhq/00003/00004.png").exists()


def test_a_zip_with_a_path_traversal_member_is_refused(course):
    evil = zip_of({"000003.png": png(1), "../../../evil.png": png(2)})
    course.server.files["/mirror/000003.zip"] = evil
    summary = course.fetch()
    assert "refused stylegan-psi-0.7 000003.zip: member '../../../evil.png'" in summary.failed[
        "stylegan-psi-0.7 000003.zip"]
    assert [p for p in course.requests() if p.endswith("000003.zip")] == ["/mirror/000003.zip"]  # no retry
    assert not list(course.tmp.rglob("evil.png"))
    assert not (course.root / "fake/stylegan/psi-0.7/000003").exists()


def test_dry_run_lists_the_files_and_their_size_and_fetches_nothing(course, capsys):
    course.fetch(dry_run_only=True)
    out = capsys.readouterr().out
    assert course.server.log == [] and course.files() == []
    assert "stylegan-psi-0.7 000000.zip ->" in out and "ffhq (real): 6 images to fetch" in out
    assert "total to fetch: ~" in out and "nothing fetched (--dry-run)" in out
    course.fetch(fake=3)  # once the metadata is there, the images are listed one by one
    course.fetch(dry_run_only=True)
    out = capsys.readouterr().out
    assert "ffhq (real): 0 to fetch, 6 present" in out and "stylegan-psi-0.7 (fake): 1 to fetch" in out


def test_too_little_disk_space_stops_before_fetching_anything(course, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: types.SimpleNamespace(free=1000, total=10**9))
    with pytest.raises(CaseStudyError, match="not enough disk space") as err:
        course.fetch()
    assert "--data-root" in str(err.value) and course.server.log == []


# ---------------------------------------------------------------- Google Drive (at gdown's boundary)


@pytest.fixture
def drive(course, monkeypatch):
    """Point gdown at the local server; the folder listing (a Drive page) is the one thing stubbed."""
    drive_files = course.server.files
    for i, data in course.real.items():
        drive_files[f"/drive/real{i}"] = data
    drive_files["/drive/meta"] = course.metadata
    for name, data in course.zips.items():
        drive_files[f"/drive/zip-{name}"] = data
    monkeypatch.setattr(sources, "DRIVE_URL", course.server.url + "/drive/{id}")
    listing = [types.SimpleNamespace(id=f"zip-{n}", path=f"psi-0.7/{n}", local_path="") for n in course.zips]
    listing.append(types.SimpleNamespace(id="other", path="psi-1.0/000000.zip", local_path=""))
    calls = []

    def download_folder(**kwargs):
        calls.append(kwargs)
        return listing

    monkeypatch.setattr("gdown.download_folder", download_folder)
    manifest = course.manifest
    for key in ("ffhq", "stylegan-psi-0.7"):
        manifest["datasets"][key]["sources"] = yaml.safe_load(
            (ROOT / "data_manifest.yaml").read_text())["datasets"][key]["sources"]
    manifest["files"]["ffhq-metadata"]["sources"] = [{"kind": "drive", "id": "meta"}]
    course.write()
    course.listing_calls = calls
    return course


def test_drive_fetch_goes_through_gdown_with_per_image_ids_and_the_folder_listing(drive):
    summary = drive.fetch()
    assert drive.files() == EXPECTED and not summary.failed
    assert sorted(drive.requests()) == sorted(["/drive/meta", *[f"/drive/real{i}" for i in range(6)],
                                               "/drive/zip-000000.zip", "/drive/zip-000003.zip"])
    assert [call["id"] for call in drive.listing_calls] == ["14lm8VRN1pr4g_KVe6_LvyDX1PObst6d4"]
    shutil.rmtree(drive.root / "fake")
    drive.fetch()  # the listing is remembered in state.json
    assert len(drive.listing_calls) == 1


def test_a_cut_drive_transfer_resumes_through_gdown(drive):
    drive.server.cut_once["/drive/real0"] = 800_000  # gdown reads 512 kB at a time
    summary = drive.fetch()
    tries = [rng for path, rng in drive.server.log if path == "/drive/real0"]
    assert tries[0] is None and tries[-1] == "bytes=524288-"  # gdown kept its first 512 kB chunk
    assert drive.files() == EXPECTED and not summary.failed


def test_a_zip_missing_from_the_drive_listing_says_how_to_name_it(drive, monkeypatch):
    listing = [types.SimpleNamespace(id="zip-000000.zip", path="psi-0.7/000000.zip", local_path="")]
    monkeypatch.setattr("gdown.download_folder", lambda **kwargs: listing)  # Drive lists 50 at most
    summary = drive.fetch()
    why = summary.failed["stylegan-psi-0.7 000003.zip"]
    assert "not in the listing of Drive folder" in why and "drive_id" in why
    assert list(summary.failed) == ["stylegan-psi-0.7 000003.zip"]


@pytest.mark.parametrize("page,says", [(QUOTA_PAGE, "quota"), (SIGN_IN_PAGE, "sign-in page")])
def test_drive_quota_and_sign_in_pages_are_recognised_and_the_source_skipped(drive, page, says, monkeypatch):
    monkeypatch.setattr(download, "WORKERS", 1)
    for i in range(6):
        drive.server.files[f"/drive/real{i}"] = page.decode()
    summary = drive.fetch(fake=3)
    assert set(summary.failed) == {f"ffhq {i // 3 * 3:05d}/{i:05d}.png" for i in range(6)}
    assert all(says in why and "--from PATH" in why for why in summary.failed.values())
    assert len([p for p in drive.requests() if p.startswith("/drive/real")]) == 1  # then skipped
    assert not (drive.root / "real").exists()


def test_gdown_reporting_drives_quota_is_turned_into_advice(drive, monkeypatch):
    import gdown

    def refuse(**kwargs):
        raise gdown.exceptions.FileURLRetrievalError(
            "Failed to retrieve file url: Too many users have viewed or downloaded this file recently. "
            "Please try accessing the file again later.")

    monkeypatch.setattr(gdown, "download", refuse)
    with pytest.raises(CaseStudyError, match="cannot get ffhq-dataset-v2.json.*quota.*wait a day"):
        drive.fetch()
    assert not (drive.root / ".fetch/ffhq-dataset-v2.json").exists()


# ---------------------------------------------------------------- other sources


def local_copy(course, tmp_path: Path) -> Path:
    """The instructor's folder: FFHQ images flat, one zip as published, one zip already extracted."""
    folder = tmp_path / "instructor"
    for i, data in course.real.items():
        (folder / "real_images").mkdir(parents=True, exist_ok=True)
        (folder / "real_images" / f"{i:05d}.png").write_bytes(data)
    (folder / "ffhq-dataset-v2.json").write_bytes(course.metadata)
    (folder / "fake" / "000000.zip").parent.mkdir(parents=True)
    (folder / "fake" / "000000.zip").write_bytes(course.zips["000000.zip"])
    with zipfile.ZipFile(io.BytesIO(course.zips["000003.zip"])) as z:
        z.extractall(folder / "fake" / "000003")
    return folder


def test_local_import_from_a_folder(course, tmp_path):
    summary = course.fetch(local=str(local_copy(course, tmp_path)), source="local")
    assert course.files() == EXPECTED and not summary.failed and course.server.log == []


def test_local_import_from_a_zip_sends_no_request_and_a_bad_copy_falls_back(course, tmp_path):
    folder = local_copy(course, tmp_path)
    (folder / "real_images" / "00005.png").write_bytes(png(55))  # a damaged copy
    archive = shutil.make_archive(str(tmp_path / "course"), "zip", folder)
    summary = course.fetch(local=archive)
    assert course.files() == EXPECTED and not summary.failed
    assert course.requests() == ["/mirror/images1024x1024/00003/00005.png"]


def test_kaggle_source_uses_the_official_client_with_your_credentials(course, tmp_path, monkeypatch):
    folder = local_copy(course, tmp_path)
    calls = []

    class KaggleApi:
        def authenticate(self):
            calls.append("authenticate")

        def dataset_download_files(self, dataset, path, quiet, unzip):
            calls.append(dataset)
            shutil.copytree(folder, path, dirs_exist_ok=True)

    module = types.ModuleType("kaggle.api.kaggle_api_extended")
    module.KaggleApi = KaggleApi
    monkeypatch.setitem(sys.modules, "kaggle", types.ModuleType("kaggle"))
    monkeypatch.setitem(sys.modules, "kaggle.api", types.ModuleType("kaggle.api"))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)
    summary = course.fetch(source="kaggle:someone/course-faces")
    assert calls == ["authenticate", "someone/course-faces"] and not summary.failed
    assert course.files() == EXPECTED and course.server.log == []


def test_without_the_kaggle_client_the_error_says_what_to_install(course, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", None)  # import fails
    with pytest.raises(CaseStudyError, match="Kaggle client is not installed: pip install kaggle"):
        course.fetch(source="kaggle:someone/course-faces")


def test_cli_errors_are_one_line_with_exit_status_2(course, monkeypatch, capsys):
    monkeypatch.setenv("CASESTUDY_MANIFEST", str(course.path))
    root = ["--data-root", str(course.data_root), "--quiet"]

    def status(*args: str) -> int:
        try:
            return cli.main(["data", "fetch", *args, *root])
        except SystemExit as stop:  # a usage error found by argparse
            return stop.code

    assert status("--source", "ftp://example") == 2
    assert status("--dataset", "nope") == 2
    assert status("--weights", "none.pth") == 2
    assert status("--from", str(course.tmp / "absent.zip")) == 2
    assert status("--real", "-1") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("casestudy data fetch: error:") for line in lines)
    assert status("--real", "3", "--fake", "3") == 0
    assert course.files() == [*EXPECTED[:3], *EXPECTED[6:9]]


# ---------------------------------------------------------------- the ImageNet weights


def test_weights_imagenet_lands_in_torch_home_and_then_works_offline(tmp_path, server, monkeypatch):
    import torch
    from torchvision.models import resnet18

    from casestudy.model import build_model

    state = resnet18(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.files[f"/models/{name}"] = data
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("CASESTUDY_IMAGENET_URL", f"{server.url}/models/{name}")
    assert cli.main(["data", "fetch", "--weights", "imagenet", "--quiet"]) == 0
    assert (tmp_path / "torch-home/hub/checkpoints" / name).read_bytes() == data
    server.log.clear()
    assert cli.main(["data", "fetch", "--weights", "imagenet", "--quiet"]) == 0
    assert server.log == []  # already present
    server.shutdown()
    server.server_close()
    server.shutdown = server.server_close = lambda: None
    model = build_model("imagenet")
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_weights_with_a_wrong_hash_are_refused(tmp_path, server, monkeypatch, capsys):
    server.files["/models/resnet18-00000000.pth"] = b"not the weights"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("CASESTUDY_IMAGENET_URL", f"{server.url}/models/resnet18-00000000.pth")
    with pytest.raises(download.FetchIncomplete, match="1 file.* could not be fetched"):
        download.fetch_data(None, weights=True, progress=False)
    assert "checksum mismatch for ImageNet weights" in capsys.readouterr().out
    assert not (tmp_path / "torch-home/hub/checkpoints/resnet18-00000000.pth").exists()
