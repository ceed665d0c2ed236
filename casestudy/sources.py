"""Where fetched files come from: Google Drive, an HTTP mirror, Kaggle, or a folder or zip at hand.

Book chapter 01_data. Each source writes one item's bytes to a temporary file (`get`); checking
and renaming them into place is casestudy/download.py's job, the same for every source. Google
Drive goes through gdown and HTTP through requests; only the glue is written here.
"""

from __future__ import annotations

import shutil
import threading
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path, PurePosixPath

import requests

from casestudy import CaseStudyError
from casestudy.data import IMAGE_SUFFIXES
from casestudy.fetch_common import (
    CHUNK,
    UNREADABLE_ZIP,
    Blocked,
    Unavailable,
    move_into,
    page_problem,
    reason,
    staging,
)

HTTP_CHUNK = 1 << 16  # what a cut transfer can lose: the bytes of the chunk being read

DRIVE_URL = "https://drive.google.com/uc?id={id}"  # gdown resolves Drive's confirmation pages
TIMEOUT = (15, 120)  # seconds to connect, and between two bytes
KINDS = ("drive", "http", "kaggle", "local")
OTHER_SOURCES = "--source kaggle:OWNER/NAME, --source URL or --from PATH"
_session = threading.local()


def choose(specs: list[dict], source: str | None, local: str | None, fetch, key: str) -> list:
    """Turn the manifest's sources for `key`, narrowed or replaced by --source and --from, into objects."""
    if source is None:
        chosen = list(specs)
    elif source in KINDS:
        chosen = [s for s in specs if s["kind"] == source]
        if not chosen and not local:
            raise CaseStudyError(f"the manifest names no {source} source for {key}; give one with "
                                 f"{OTHER_SOURCES}")
    elif source.startswith("kaggle:"):
        chosen = [{"kind": "kaggle", "dataset": source.removeprefix("kaggle:")}]
    elif source.startswith(("http://", "https://")):
        chosen = [{"kind": "http", "url": source}]
    else:
        raise CaseStudyError(f"--source {source}: use one of {', '.join(KINDS)}, kaggle:OWNER/NAME "
                             f"or an http(s):// address")
    if local:
        if not Path(local).expanduser().exists():
            raise CaseStudyError(f"--from {local}: no such folder or zip file")
        chosen.insert(0, {"kind": "local", "path": local})
    made = []
    for spec in chosen:
        cache_key = tuple(sorted((k, v) for k, v in spec.items() if k != "description"))
        with fetch.lock:
            if cache_key not in fetch.sources:
                kind = {"drive": DriveSource, "http": HttpSource, "kaggle": KaggleSource,
                        "local": LocalSource}[spec["kind"]]
                fetch.sources[cache_key] = kind(spec)
        made.append(fetch.sources[cache_key])
    return made


def session() -> requests.Session:
    if not hasattr(_session, "value"):  # one per thread: requests' sessions are not thread-safe
        _session.value = requests.Session()
    return _session.value


class HttpSource:
    """A plain HTTP(S) mirror; `url` may hold {path} or {name}, else the item's path is appended."""

    transient = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                 requests.HTTPError)

    def __init__(self, spec: dict):
        self.url = spec["url"]
        self.label = self.url

    def address(self, item) -> str:
        name = PurePosixPath(item.path).name
        if "{" in self.url:
            return self.url.format(path=item.path, name=name)
        if self.url.rsplit("/", 1)[-1] == name:
            return self.url
        return f"{self.url.rstrip('/')}/{item.path}"

    def get(self, item, part: Path, fetch) -> bool:
        """Download into `part`, continuing a partial file with a Range request where possible."""
        url = self.address(item)
        offset = part.stat().st_size if part.exists() else 0
        if item.size is not None and offset >= item.size:
            if offset == item.size:
                return False  # complete: interrupted before it was checked
            part.unlink()
            offset = 0
        headers = {"Accept-Encoding": "identity"}  # offsets must count the bytes on disk
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with session().get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 416:  # our partial file is not a prefix of theirs
                part.unlink()
                raise requests.HTTPError("range not satisfiable: starting again")
            if response.status_code == 429 or response.status_code >= 500:
                raise requests.HTTPError(f"{response.status_code} {response.reason}")
            if response.status_code >= 400:
                raise Unavailable(f"{item.name} is not at {url} ({response.status_code} {response.reason})")
            if offset and response.status_code != 206:
                offset = 0  # the server ignored Range: start afresh
            with open(part, "ab" if offset else "wb") as f:
                for chunk in response.iter_content(HTTP_CHUNK):
                    if fetch.cancel.is_set():
                        raise Unavailable("interrupted")
                    f.write(chunk)
                    fetch.advance(len(chunk))
        return False


class DriveSource:
    """Google Drive through gdown: a file id, per-item ids (FFHQ's metadata), or a folder's listing."""

    def __init__(self, spec: dict):
        import gdown

        self.spec = spec
        self.gdown = gdown
        where = (f" folder {spec['folder']}" if "folder" in spec
                 else f" file {spec['id']}" if "id" in spec else "")
        self.label = f"Google Drive{where}"  # a quota page skips this source, not every Drive source
        self.transient = (gdown.exceptions.DownloadError, requests.ConnectionError, requests.Timeout)
        self.listing: dict | None = None
        self.listing_lock = threading.Lock()

    def file_id(self, item, fetch) -> str:
        if item.drive_id:
            return item.drive_id
        if "id" in self.spec:
            return self.spec["id"]
        if "folder" in self.spec:
            ids = self.list_folder(fetch)
            if item.path in ids:
                return ids[item.path]
            raise Unavailable(f"{item.name} is not in the listing of Drive folder {self.spec['folder']} "
                              f"({len(ids)} files seen; Drive lists at most 50 per folder): add its "
                              f"drive_id to the manifest, or use {OTHER_SOURCES}")
        raise Unavailable(f"the manifest gives no Google Drive id for {item.name}")

    def list_folder(self, fetch) -> dict[str, str]:
        """Map file names in folder/subfolder to Drive ids, listed once and kept in state.json."""
        key = f"{self.spec['folder']}/{self.spec.get('subfolder', '')}"
        with self.listing_lock:
            if self.listing is None:
                self.listing = fetch.state().get("drive_ids", {}).get(key)
            if self.listing is None:
                try:
                    files = self.gdown.download_folder(id=self.spec["folder"], skip_download=True,
                                                       quiet=True, use_cookies=False)
                except (self.gdown.exceptions.DownloadError, requests.RequestException) as err:
                    raise Blocked(f"could not list Google Drive folder {self.spec['folder']} "
                                  f"({reason(err)}); try again later or use {OTHER_SOURCES}") from None
                below = PurePosixPath(self.spec.get("subfolder", ""))
                self.listing = {str(PurePosixPath(f.path).relative_to(below)): f.id for f in files
                                if PurePosixPath(f.path).is_relative_to(below)}
                fetch.remember("drive_ids", key, self.listing)
            return self.listing

    def get(self, item, part: Path, fetch) -> bool:
        file_id = self.file_id(item, fetch)
        seen = [0]

        def progress(done: int, total: int | None) -> None:
            fetch.advance(max(0, done - seen[0]))
            seen[0] = max(seen[0], done)

        try:  # resume=True: gdown continues its own partial file beside `part`
            self.gdown.download(url=DRIVE_URL.format(id=file_id), output=str(part), quiet=True,
                                resume=True, use_cookies=False, progress=progress,
                                timeout=TIMEOUT, cancel=fetch.cancel)
        except self.gdown.exceptions.FileURLRetrievalError as err:
            text = str(err).lower()
            if "permission" in text or "many accesses" in text:
                raise Blocked(f"Google Drive would not give {item.name}: its download quota is spent or "
                              f"it is not shared publicly; wait a day and run the same command again "
                              f"(it resumes), or use {OTHER_SOURCES}") from None
            raise page_problem(str(err), item.name, self.label) from None
        except self.gdown.exceptions.DownloadCancelled:
            raise Unavailable("interrupted") from None
        return False


class KaggleSource:
    """A Kaggle dataset, downloaded once with the official client and your own credentials."""

    transient = ()

    def __init__(self, spec: dict):
        self.dataset = spec["dataset"]
        self.label = f"kaggle {self.dataset}"
        self.local: LocalSource | None = None
        self.lock = threading.Lock()

    def get(self, item, part: Path, fetch) -> bool:
        with self.lock:
            if self.local is None:
                self.local = LocalSource({"path": str(self.download(fetch))})
        return self.local.get(item, part, fetch)

    def download(self, fetch) -> Path:
        folder = fetch.work / "kaggle" / self.dataset.replace("/", "__")
        if (folder / ".complete").exists():
            return folder
        try:  # imported only now: the client may try to authenticate on import
            from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError:
            raise Blocked("the Kaggle client is not installed: pip install kaggle "
                          "(or pip install 'casestudy[kaggle]')") from None
        api = KaggleApi()
        try:
            api.authenticate()
        except (Exception, SystemExit) as err:
            raise Blocked(f"Kaggle did not accept your credentials ({reason(err)}): put kaggle.json in "
                          f"~/.kaggle/ or set KAGGLE_USERNAME and KAGGLE_KEY") from None
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            api.dataset_download_files(self.dataset, path=str(folder), quiet=not fetch.progress, unzip=True)
        except Exception as err:
            raise Blocked(f"could not download Kaggle dataset {self.dataset} ({reason(err)})") from None
        (folder / ".complete").touch()
        return folder


class LocalSource:
    """A folder or zip you already have (e.g. the course's real_images.zip); zips inside are searched too.

    A damaged zip is skipped with a message (the next source is tried); a folder stands in for an
    archive only when it holds every member, each a valid image (and of the known CRC-32).
    """

    transient = ()

    def __init__(self, spec: dict):
        self.path = Path(spec["path"]).expanduser()
        self.label = f"local {self.path}"
        self.entries: dict[str, tuple[Path | None, str]] | None = None  # rel -> (zip or None, name)
        self.damaged: list[str] = []  # zips inside the folder that could not be read
        self.lock = threading.Lock()
        self.zips = threading.local()

    def index(self) -> None:
        with self.lock:
            if self.entries is not None:
                return
            entries = {}
            if self.path.is_file():
                entries[self.path.name] = (None, str(self.path))  # the item itself (a zip, weights)
                if zipfile.is_zipfile(self.path):
                    self.add_zip(entries, self.path, "")
                elif self.path.suffix.lower() == ".zip":
                    raise Blocked(f"--from {self.path} is not a valid zip (truncated or damaged): skipped")
            elif self.path.is_dir():
                for f in sorted(self.path.rglob("*")):
                    if f.is_file():
                        rel = f.relative_to(self.path).as_posix()
                        entries[rel] = (None, str(f))
                        if f.suffix.lower() == ".zip" and zipfile.is_zipfile(f):
                            self.add_zip(entries, f, rel + "/")
            else:
                raise Blocked(f"--from {self.path}: no such folder or zip file (any more)")
            self.by_tail = defaultdict(list)
            for rel in entries:
                parts = PurePosixPath(rel).parts
                for tail in {"/".join(parts[-2:]), parts[-1]}:
                    self.by_tail[tail].append(rel)
            self.entries = entries

    def add_zip(self, entries: dict, path: Path, prefix: str) -> None:
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        entries[prefix + info.filename] = (path, info.filename)
        except UNREADABLE_ZIP as err:
            if not prefix:
                raise Blocked(f"--from {path} is not a valid zip ({reason(err)}): skipped") from None
            self.damaged.append(f"{path} ({reason(err)})")  # its own entry still names it

    def find(self, item) -> str | None:
        parts = PurePosixPath(item.path).parts
        for tail in ("/".join(parts[-2:]), parts[-1]):
            hits = self.by_tail.get(tail, [])
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise Unavailable(f"{item.name} is ambiguous in {self.path}: {hits[0]}, {hits[1]}, ...")
        return None

    def open(self, rel: str):
        container, name = self.entries[rel]
        if container is None:
            return open(name, "rb")
        cache = self.zips.__dict__.setdefault("open", {})  # one ZipFile per thread and zip
        if container not in cache:
            cache[container] = zipfile.ZipFile(container)
        return cache[container].open(name)

    def where(self, rel: str) -> str:
        container, name = self.entries[rel]
        return name if container is None else f"{container}:{name}"

    def copy(self, rel: str, out: Path, fetch) -> None:
        """Copy one entry to `out`; a damaged zip member or an unreadable file is Unavailable."""
        try:
            src = self.open(rel)
        except (OSError, *UNREADABLE_ZIP) as err:
            raise Unavailable(f"cannot read {self.where(rel)} ({reason(err)})") from None
        with src, open(out, "wb") as dst:
            while True:
                try:
                    block = src.read(CHUNK)
                except UNREADABLE_ZIP as err:  # e.g. "Bad CRC-32": only a zip member says so
                    dst.close()
                    out.unlink()  # no partial copy for the next source to resume
                    raise Unavailable(f"{self.where(rel)} is damaged ({reason(err)})") from None
                if not block:
                    return
                dst.write(block)
                fetch.advance(len(block))

    def get(self, item, part: Path, fetch) -> bool:
        self.index()
        rel = self.find(item)
        if rel is None and item.archive:
            return self.import_folder(item, fetch)
        if rel is None:
            raise Unavailable(f"{item.name} ({PurePosixPath(item.path).name}) is not in {self.path}")
        self.copy(rel, part, fetch)
        return False

    def folder_for(self, item) -> tuple[str, list[str]]:
        """The folder named like the archive (000000/) with the most images, and those images."""
        stem = PurePosixPath(item.path).stem
        base = PurePosixPath(self.path.name if self.path.is_dir() else "")  # --from .../000000 itself
        folders = defaultdict(list)
        for rel in self.entries:
            path = base / rel
            if path.parent.name == stem and path.suffix.lower() in IMAGE_SUFFIXES:
                folders[path.parent.as_posix()].append(rel)
        if not folders:
            raise Unavailable(f"{item.name} is not in {self.path} (neither {item.path} nor a folder {stem}/)")
        folder = max(folders, key=lambda f: len(folders[f]))
        shown = str(self.path.parent / folder) if self.path.is_dir() else f"{self.path}:{folder}"
        return shown, folders[folder]

    def import_folder(self, item, fetch) -> bool:
        """Take an archive's images from an already extracted folder of the same name (000000/).

        Accepted only when complete: every member the manifest or an earlier verified copy lists,
        or, with no list known, exactly as many images as the manifest says an archive holds.
        """
        from PIL import Image

        shown, found = self.folder_for(item)
        names = {PurePosixPath(rel).name: rel for rel in found}
        expected = item.members or {}
        count = len(expected) or item.member_count
        have = len(set(names) & {PurePosixPath(m).name for m in expected}) if expected else len(names)
        if have < (count or 0) or (not expected and count and have > count):
            raise Unavailable(f"{shown}: {have} of {count} images of {PurePosixPath(item.path).name}")
        if not expected and count:
            fetch.note(f"{shown}: {have} images, as many as {PurePosixPath(item.path).name} holds; "
                       f"taken for it by count (no member list is known to check their names against)")
        listed = {}
        with staging(fetch.work, item) as tmp:
            for name in expected or names:
                rel = names[PurePosixPath(name).name]
                out = tmp / name
                out.parent.mkdir(parents=True, exist_ok=True)
                self.copy(rel, out, fetch)
                listed[name] = self.verify(out, expected.get(name), self.where(rel), Image)
            fetch.remember("members", item.name, listed)
            move_into(tmp, item.target)
        return True

    @staticmethod
    def verify(copy: Path, crc: int | None, shown: str, image) -> int:
        """Return the copy's CRC-32 once it matches `crc` (where known) and decodes as an image."""
        actual = 0
        with open(copy, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                actual = zlib.crc32(block, actual)
        if crc is not None and actual != crc:
            raise Unavailable(f"{shown} differs from the verified copy (CRC-32 {actual:08x}, expected "
                              f"{crc:08x})")
        try:
            with image.open(copy) as img:
                img.verify()  # PNG chunk CRCs; no checksum is published for these images
        except Exception as err:
            why = reason(err).replace(f" '{copy}'", "")  # the temporary copy's name says nothing
            raise Unavailable(f"{shown} is not a valid image ({why})") from None
        return actual
