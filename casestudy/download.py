"""Get the course data: fetch, verify and lay out every file that data_manifest.yaml declares.

Book chapter 01_data.

    casestudy data fetch --dataset course --real 10000 --fake 10000   # -> data/raw/{real,fake}/
    casestudy data fetch --weights imagenet                           # -> torch's hub cache

Every file is downloaded (or copied) to a temporary name under <collection>/.fetch/partial/,
checked against its size and checksum, and only then renamed into place: a file at its final
path has been verified, so a second run skips it, and an interrupted run loses nothing verified
(a cut HTTP transfer resumes with a Range request). A bad checksum deletes the file and tries
again; after ATTEMPTS tries the next source is tried. Google Drive's quota or sign-in page is
recognised and never saved as an image; archives are extracted only if no member would land
outside their folder, and a folder is taken for an archive only when it holds every member. When a
source fails, one line says why and which source is tried next. A failure the user can fix (a full
or read-only disk, a folder that cannot be written, items no source could give) ends the run with
one line (CaseStudyError). The sources themselves (Drive, HTTP, Kaggle, a local folder or zip) live
in casestudy/sources.py, what both share in casestudy/fetch_common.py, the manifest and its schema
in casestudy/manifest.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from casestudy import CaseStudyError
from casestudy import sources as src
from casestudy.data import IMAGE_SUFFIXES
from casestudy.fetch_common import (
    CHUNK,
    UNREADABLE_ZIP,
    Blocked,
    Refused,
    Unavailable,
    move_into,
    page_problem,
    reason,
    staging,
)
from casestudy.files import write_json, write_text
from casestudy.manifest import load_manifest

ATTEMPTS = 3  # per file and source: a checksum mismatch or a cut transfer is tried again
WORKERS = 8  # files fetched at once (NVIDIA's download_ffhq.py uses 32)
NOTES = 10  # "... failed; fetching it from ..." lines per run; the summary names the rest
FATAL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # writing anything here would fail as well


@dataclass
class Item:
    """One thing to fetch: a file, or an archive that is extracted into the folder `target`."""

    name: str  # how messages name it, e.g. "ffhq 00000/00012.png"
    path: str  # its path in the upstream layout: mirror URLs and local imports find it by this
    target: Path  # where it ends up
    size: int | None = None  # None: unpublished
    checksum: tuple[str, str] | None = None  # ("md5" | "sha256" | "sha256-prefix", hex)
    drive_id: str | None = None
    archive: bool = False
    approx_size: int = 0  # the estimate used while `size` is unknown
    pin: str | None = None  # state key under which an unpublished checksum is pinned
    members: dict | None = None  # an archive's member paths -> CRC-32 (None: unknown), where known
    member_count: int | None = None  # how many images an archive holds (the manifest's per_unit)

    @property
    def expected_bytes(self) -> int:
        return self.size or self.approx_size


class FetchIncomplete(CaseStudyError):
    """Some items came from no source; `summary` says which and why."""

    def __init__(self, message: str, summary: Summary):
        super().__init__(message)
        self.summary = summary


@dataclass
class Fetch:
    """What one `data fetch` run shares between its worker threads."""

    root: Path  # the collection's folder (data/raw), or torch's cache folder for the weights
    progress: bool = True
    state_file: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancel: threading.Event = field(default_factory=threading.Event)
    blocked: dict = field(default_factory=dict)  # source label -> why it is skipped
    sources: dict = field(default_factory=dict)  # made once per run: listings, indexes, downloads
    bytes_bar: tqdm | None = None
    notes: int = 0  # fallback lines printed so far

    @property
    def work(self) -> Path:
        return self.root / ".fetch"

    def partial(self, item: Item) -> Path:
        if PurePosixPath(item.path).is_absolute() or ".." in PurePosixPath(item.path).parts:
            raise Unavailable(f"refused {item.name}: its path {item.path!r} would leave {self.work}")
        path = self.work / "partial" / f"{item.path}.part"  # one folder per upstream folder
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def advance(self, n: int) -> None:
        if self.bytes_bar is not None and n:
            with self.lock:
                self.bytes_bar.update(n)

    def state(self) -> dict:
        if self.state_file and self.state_file.is_file():
            return json.loads(self.state_file.read_text())
        return {}

    def remember(self, section: str, key: str, value) -> None:
        """Record a fact in .fetch/state.json (atomically: never a half-written file)."""
        with self.lock:
            state = self.state()
            state.setdefault(section, {})[key] = value
            write_json(state, self.state_file)

    def note(self, line: str) -> None:
        """Print one line about a source that failed (the first NOTES of a run, then a count)."""
        with self.lock:
            self.notes += 1
            if self.notes <= NOTES:
                tqdm.write(" ".join(line.split()))
            elif self.notes == NOTES + 1:
                tqdm.write("... more sources failed; the summary at the end lists what is missing")


@dataclass
class Summary:
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def show(self, next_step: str) -> None:
        print(f"fetched {len(self.fetched)}, already present {len(self.present)}, "
              f"failed {len(self.failed)}")
        by_reason: dict[str, list[str]] = {}
        for name, why in self.failed.items():
            by_reason.setdefault(why, []).append(name)
        for why, names in list(by_reason.items())[:10]:
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            print(f"failed {names[0]}{more}: {why}")
        if len(by_reason) > 10:
            print(f"... and {len(by_reason) - 10} other reasons")
        if self.failed:
            print("run the same command again to retry what failed (nothing verified is fetched twice)")
        else:
            print(f"next: {next_step}")


# ---------------------------------------------------------------- checking a file


def digest(path: Path, algorithm: str) -> str:
    h = hashlib.new("sha256" if algorithm == "sha256-prefix" else algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def html_problem(path: Path, name: str, source: str) -> Blocked | Unavailable | None:
    """Recognise an HTML page (Drive's quota or sign-in page, a portal) saved instead of a file."""
    with open(path, "rb") as f:
        head = f.read(65536)
    if not head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return None
    return page_problem(head.decode("utf-8", "replace"), name, source)


def check(item: Item, part: Path, source: str, pinned: dict) -> Unavailable | None:
    """Return why `part` is not `item` (size, HTML page, checksum), or None when it is."""
    html = html_problem(part, item.name, source)
    if html is not None:
        return html
    size = part.stat().st_size
    if item.size is not None and size != item.size:
        return Unavailable(f"{item.name} from {source} has {size} bytes, the manifest says {item.size}")
    checksum = item.checksum or (("sha256", pinned[item.pin]["sha256"]) if item.pin in pinned else None)
    if checksum is None:
        return None
    algorithm, expected = checksum
    actual = digest(part, algorithm)
    if not actual.startswith(expected) or (algorithm != "sha256-prefix" and actual != expected):
        return Unavailable(f"checksum mismatch for {item.name} from {source}: its {algorithm.split('-')[0]} "
                           f"is {actual[:16]}..., expected {expected[:16]}...")
    return None


# ---------------------------------------------------------------- archives


def safe_members(archive: zipfile.ZipFile, name: str, path: str) -> list:
    """Return the image members and where each goes; refuse the archive if any member could escape."""
    members = []
    for info in archive.infolist():
        member = PurePosixPath(info.filename.replace("\\", "/"))
        if member.is_absolute() or re.match(r"^[A-Za-z]:", info.filename) or ".." in member.parts:
            raise Refused(f"refused {name}: member {info.filename!r} would land outside its folder")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise Refused(f"refused {name}: member {info.filename!r} is a symbolic link")
        if not info.is_dir() and member.suffix.lower() in IMAGE_SUFFIXES and "__MACOSX" not in member.parts:
            members.append((info, member))
    if not members:
        raise Unavailable(f"{name} holds no image")
    stem = PurePosixPath(path).stem
    if all(p.parts[0] == stem and len(p.parts) > 1 for _, p in members):  # 000000/x.png -> x.png
        members = [(info, PurePosixPath(*p.parts[1:])) for info, p in members]
    return members


def extract(part: Path, item: Item, fetch: Fetch, source: str) -> int:
    """Extract an archive's images into item.target; return how many. Members are CRC-checked.

    The member list (with each CRC-32) is kept in state.json: a later run checks that every member
    is still in place, and a folder offered for this archive with --from must hold them all.
    """
    try:
        with staging(fetch.work, item) as tmp, zipfile.ZipFile(part) as archive:
            members = safe_members(archive, item.name, item.path)
            for info, path in members:
                out = tmp.joinpath(*path.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src_file, open(out, "wb") as dst:
                    shutil.copyfileobj(src_file, dst, CHUNK)  # a CRC mismatch raises BadZipFile here
            listed = {path.as_posix(): info.CRC for info, path in members}
            missing = sorted(set(item.members or {}) - set(listed))
            if missing:
                raise Unavailable(f"{item.name} from {source} lacks {len(missing)} of its "
                                  f"{len(item.members)} known members (e.g. {missing[0]})")
            fetch.remember("members", item.name, listed)
            move_into(tmp, item.target)
    except UNREADABLE_ZIP as err:
        raise Unavailable(f"{item.name} from {source} is not a valid zip ({reason(err)})") from None
    except Unavailable as err:
        raise type(err)(f"{err} (from {source})") from None
    return len(members)


# ---------------------------------------------------------------- one item, every source


def is_present(item: Item) -> bool:
    """A file of the right size, or a folder holding every member of its archive (or as many)."""
    if not item.archive:
        return item.target.is_file() and (item.size is None or item.target.stat().st_size == item.size)
    if not item.target.is_dir():
        return False
    if item.members:
        return all((item.target / name).is_file() for name in item.members)
    return item.member_count is None or count_images(item.target) >= item.member_count


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def fetch_item(item: Item, sources: list, fetch: Fetch) -> str:
    """Bring one item into place from the first source that has it; return "fetched" or "present"."""
    if is_present(item):
        return "present"
    reasons = []
    for position, source in enumerate(sources):
        if fetch.cancel.is_set():
            raise Unavailable("interrupted")
        if source.label in fetch.blocked:
            reasons.append(fetch.blocked[source.label])
            continue
        try:
            fetch_from(item, source, fetch)
            return "fetched"
        except Blocked as err:
            with fetch.lock:
                first = source.label not in fetch.blocked
                fetch.blocked.setdefault(source.label, str(err))
            reasons.append(str(err))
            if first:  # said once: every later item skips this source
                say_next(err, sources[position + 1:], fetch)
        except Unavailable as err:
            reasons.append(str(err))
            say_next(err, sources[position + 1:], fetch)
    raise Unavailable("; ".join(reasons) or f"no source for {item.name}")


def say_next(err: Unavailable, rest: list, fetch: Fetch) -> None:
    """One line: why a source failed, and which one is tried next (none: the summary says it)."""
    following = next((s for s in rest if s.label not in fetch.blocked), None)
    if following is not None and str(err) != "interrupted":
        fetch.note(f"{err}; fetching it from {following.label}")


def fetch_from(item: Item, source, fetch: Fetch) -> None:
    """Try one source up to ATTEMPTS times: get, check, then rename (or extract) into place."""
    part = fetch.partial(item)
    problem = None
    attempts = ATTEMPTS if source.transient else 1  # copying a local file again changes nothing
    for _ in range(attempts):
        if fetch.cancel.is_set():
            raise Unavailable("interrupted")
        try:
            if source.get(item, part, fetch):  # may resume a partial file from an earlier attempt
                return  # the source put the item in place itself (images from a local folder)
        except Blocked:
            part.unlink(missing_ok=True)
            raise
        except source.transient as err:  # a cut transfer: keep the bytes, the next attempt resumes
            problem = Unavailable(f"transfer of {item.name} from {source.label} failed: {reason(err)}")
            continue
        except OSError as err:  # requests' other errors are OSErrors too
            if cannot_write(err, fetch.root):
                raise  # fetch_data says what to do in one line
            raise Unavailable(f"{item.name} from {source.label}: {reason(err)}") from None
        problem = check(item, part, source.label, fetch.state().get("pinned", {}))
        if problem is None:
            try:
                install(item, part, fetch, source.label)
                return
            except Unavailable as err:  # a broken archive is fetched again; an unsafe one is not
                problem = err
        part.unlink(missing_ok=True)
        if isinstance(problem, Blocked | Refused):
            raise problem
    raise Unavailable(f"{problem} (tried {attempts} times)" if attempts > 1 else str(problem))


def install(item: Item, part: Path, fetch: Fetch, source: str) -> None:
    if item.archive:
        sha256 = digest(part, "sha256") if item.pin and not item.checksum else None
        extract(part, item, fetch, source)
        if sha256 and item.pin not in fetch.state().get("pinned", {}):
            fetch.remember("pinned", item.pin, {"sha256": sha256, "size": part.stat().st_size})
        part.unlink()
    else:
        item.target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, item.target)


def cannot_write(err: OSError, root: Path) -> bool:
    """Whether an error is about writing under `root` (fatal), not about reading a source."""
    if err.errno in FATAL:
        return True
    inside = err.filename is not None and Path(os.path.abspath(err.filename)).is_relative_to(
        os.path.abspath(root))
    return inside and err.errno in (errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR)


def os_problem(err: OSError, root: Path) -> str:
    """A write error as one line: what, where, and what to do."""
    where = err.filename or root
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk holding {root} is full: free some space or choose --data-root on a larger disk, "
                f"then run the same command again (verified files are kept and not fetched again)")
    if err.errno == errno.EROFS:
        return f"{where} is on a read-only file system: choose a writable --data-root"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where}: make it writable by you, or choose another --data-root"
    return (f"cannot write {where}: {err.strerror or reason(err)}; check the folder or choose another "
            f"--data-root")


def run_items(items: list[Item], sources: list, fetch: Fetch, summary: Summary) -> None:
    """Fetch many items at once, with a bar for files and one for bytes; record each outcome."""
    missing = [i for i in items if not is_present(i)]
    summary.present += [i.name for i in items if i not in missing]
    if not missing:
        return
    total = sum(i.expected_bytes for i in missing)
    files_bar = tqdm(total=len(missing), desc="files", unit="file", disable=not fetch.progress)
    fetch.bytes_bar = tqdm(total=total, desc="bytes", unit="B", unit_scale=True, unit_divisor=1024,
                           disable=not fetch.progress)

    def one(item: Item) -> None:
        try:
            outcome = fetch_item(item, sources, fetch)
            (summary.fetched if outcome == "fetched" else summary.present).append(item.name)
        except Unavailable as err:
            summary.failed[item.name] = str(err)
        except Exception:
            fetch.cancel.set()  # anything else (a full disk) stops every worker, then the run
            raise
        with fetch.lock:
            files_bar.update()

    pool = ThreadPoolExecutor(max(1, min(WORKERS, len(missing))))
    try:
        list(pool.map(one, missing))
        fetch.bytes_bar.total = fetch.bytes_bar.n  # the estimates give way to what arrived
        remove_empty_folders(fetch.work / "partial")
    except KeyboardInterrupt:
        fetch.cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise CaseStudyError(f"interrupted: {len(summary.fetched)} file(s) fetched and verified are kept "
                             f"(unfinished ones only under {fetch.work / 'partial'}); run the same "
                             f"command again to resume") from None
    except OSError as err:  # a full, read-only or forbidden folder: every worker has stopped
        raise CaseStudyError(os_problem(err, fetch.root)) from None
    finally:
        pool.shutdown(wait=True)
        files_bar.close()
        fetch.bytes_bar.close()


def remove_empty_folders(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):  # the deepest first
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# ---------------------------------------------------------------- what to fetch


def file_item(entry: dict, target: Path, name: str | None = None) -> Item:
    checksum = ("sha256", entry["sha256"]) if "sha256" in entry else ("md5", entry["md5"])
    return Item(name=name or entry["name"], path=entry["name"], target=target, size=entry["size"],
                checksum=checksum)


def archive_items(key: str, dataset: dict, root: Path, count: int, known: dict) -> list[Item]:
    """Items for the first `count` images (whole zips); `known`: member lists kept in state.json."""
    archives = dataset["archives"][: math.ceil(count / dataset["per_unit"])]
    if count > len(archives) * dataset["per_unit"]:
        raise CaseStudyError(f"{key} has {len(archives) * dataset['per_unit']} images in the manifest; "
                             f"ask for at most that many")
    items = []
    for a in archives:
        checksum = ("sha256", a["sha256"]) if a.get("sha256") else ("md5", a["md5"]) if a.get("md5") else None
        name = f"{key} {a['name']}"
        seen = known.get(name, {})  # CRCs from the first verified copy
        members = {m: seen.get(m) for m in a["members"]} if "members" in a else seen or None
        items.append(Item(name=name, path=a["name"],
                          target=root / dataset["into"] / Path(a["name"]).stem, size=a["size"],
                          checksum=checksum, drive_id=a.get("drive_id"), archive=True,
                          approx_size=dataset["approx_bytes_per_archive"],
                          pin=None if checksum else f"{key}/{a['name']}", members=members,
                          member_count=len(members) if members else dataset["per_unit"]))
    return items


def image_items(key: str, dataset: dict, root: Path, count: int, index: dict) -> list[Item]:
    """Items for the first `count` images (whole folders) of a per-image dataset such as FFHQ."""
    limit = math.ceil(count / dataset["per_unit"]) * dataset["per_unit"]
    if limit > dataset["units"] * dataset["per_unit"]:
        raise CaseStudyError(f"{key} has {dataset['units'] * dataset['per_unit']} images; "
                             f"ask for at most that many")
    items = []
    for number in range(limit):
        drive_id, path, size, md5 = index[str(number)]
        relative = Path(*PurePosixPath(path).parts[-2:])  # images1024x1024/00000/00000.png -> 00000/00000.png
        if ".." in relative.parts or relative.is_absolute():
            raise CaseStudyError(f"{key}'s metadata gives image {number} the unsafe path {path!r}")
        items.append(Item(name=f"{key} {relative.as_posix()}", path=path,
                          target=root / dataset["into"] / relative, size=size, checksum=("md5", md5),
                          drive_id=drive_id))
    return items


def compact_ffhq_index(metadata: Path, index_file: Path) -> dict:
    """Keep what fetching needs from ffhq-dataset-v2.json (255 MB): id, path, size, md5 per image."""
    if index_file.is_file():
        return json.loads(index_file.read_text())
    with open(metadata, encoding="utf-8") as f:
        full = json.load(f)
    index = {}
    for number, entry in full.items():
        image = entry["image"]
        match = re.search(r"[?&]id=([-\w]+)|/d/([-\w]+)", image["file_url"])
        index[number] = [match and (match[1] or match[2]), image["file_path"], image["file_size"],
                         image["file_md5"]]
    write_text(json.dumps(index), index_file)
    return index


def free_bytes(folder: Path) -> int:
    while not folder.exists():  # the nearest folder that exists is on the same disk
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_disk_space(folder: Path, needed: int) -> None:
    """Stop before starting when the disk holding `folder` lacks room for what is to be fetched."""
    free = free_bytes(folder)
    if needed * 1.05 > free:
        raise CaseStudyError(f"not enough disk space under {folder}: about {gigabytes(needed)} to fetch, "
                             f"{gigabytes(free)} free; free some space, choose --data-root on a larger "
                             f"disk, or ask for fewer images with --real/--fake")


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def dry_run(groups: list[tuple[str, list[Item]]], notes: list[tuple[str, int]], folder: Path) -> None:
    """List what would be fetched and the total size (estimated where unpublished), fetching nothing."""
    total = sum(size for _, size in notes)
    for title, items in groups:
        missing = [i for i in items if not is_present(i)]
        size = sum(i.expected_bytes for i in missing)
        estimated = "~" if any(i.size is None for i in missing) else ""
        total += size
        print(f"{title}: {len(missing)} to fetch, {len(items) - len(missing)} present, "
              f"{estimated}{gigabytes(size)}")
        for item in missing[:12]:
            print(f"  {item.name} -> {item.target}")
        if len(missing) > 12:
            print(f"  ... and {len(missing) - 12} more")
    for note, _ in notes:
        print(note)
    print(f"total to fetch: ~{gigabytes(total)} (free: {gigabytes(free_bytes(folder))}); "
          f"nothing fetched (--dry-run)")


def fetch_data(dataset: str | None = "course", real: int | None = None, fake: int | None = None,
               weights: bool = False, data_root: str = "data", source: str | None = None,
               local: str | None = None, dry_run_only: bool = False, progress: bool = True,
               manifest_file: str | None = None) -> Summary:
    """Fetch a collection's real and fake images (and/or the ImageNet weights), verified, into place."""
    manifest = load_manifest(manifest_file)
    summary = Summary()
    try:
        if weights:
            fetch_weights(manifest, source, local, dry_run_only, progress, summary)
        if dataset:
            fetch_collection(manifest, dataset, real, fake, Path(data_root), source, local,
                             dry_run_only, progress, summary)
    except KeyboardInterrupt:
        raise CaseStudyError(f"interrupted: the {len(summary.fetched)} file(s) fetched and verified are "
                             f"kept; run the same command again to resume") from None
    except OSError as err:  # a full, read-only or forbidden folder: nothing unverified is in place
        root = Path(data_root) if dataset else Path(err.filename or ".").parent
        raise CaseStudyError(os_problem(err, root)) from None
    if not dry_run_only:
        folder = manifest["collections"].get(dataset or "", {}).get("folder", "raw")
        summary.show(next_command(dataset, data_root, weights, folder))
    if summary.failed:
        name, why = next(iter(summary.failed.items()))
        raise FetchIncomplete(f"{len(summary.failed)} file(s) could not be fetched from any source, e.g. "
                              f"{name}: {' '.join(why.split())[:300]}; run the same command again to retry "
                              f"(nothing verified is fetched twice) or add a source with --from PATH or "
                              f"--source URL", summary)
    return summary


def fetch_collection(manifest: dict, dataset: str, real: int | None, fake: int | None, data_root: Path,
                     source: str | None, local: str | None, dry_run_only: bool, progress: bool,
                     summary: Summary) -> None:
    """Fetch a collection's real and fake sets into <data-root>/<folder>/real/... and .../fake/..."""
    if dataset not in manifest["collections"]:
        raise CaseStudyError(f"no dataset {dataset!r} in the manifest: choose one of "
                             f"{', '.join(manifest['collections'])}")
    collection = manifest["collections"][dataset]
    root = data_root / collection["folder"]
    fetch = Fetch(root=root, progress=progress, state_file=root / ".fetch" / "state.json")
    groups, notes = [], []
    for label, asked in (("real", real), ("fake", fake)):
        key = collection[label]
        spec = manifest["datasets"][key]
        count = collection.get(f"default_{label}", 10 * spec["per_unit"]) if asked is None else asked
        if count < 0:
            raise CaseStudyError(f"--{label} {count}: give a number of images, 0 or more")
        if count == 0:
            continue
        if count % spec["per_unit"]:
            unit = "folders" if spec["layout"] == "images" else "zips"
            print(f"note: --{label} {count} is rounded up to whole {unit} of {spec['per_unit']} images")
        chosen = src.choose(spec["sources"], source, local, fetch, key)
        title = f"{key} ({label})"
        if spec["layout"] == "archives":
            known = fetch.state().get("members", {})
            groups.append((title, archive_items(key, spec, root, count, known), chosen))
            continue
        # per-image checksums come from a metadata file, fetched (and verified) first
        meta = manifest["files"][spec["checksums"]]
        meta_item = file_item(meta, fetch.work / meta["name"])
        meta_sources = src.choose(meta["sources"], source, local, fetch, spec["checksums"])
        index_file = fetch.work / f"{key}-images-{meta.get('md5') or meta['sha256'][:32]}.json"
        if not index_file.is_file() and not is_present(meta_item):
            if dry_run_only:
                n = math.ceil(count / spec["per_unit"]) * spec["per_unit"]
                size = n * spec["approx_bytes_per_image"]
                notes.append((f"{title}: {n} images to fetch into {root / spec['into']}/, "
                              f"~{gigabytes(size)}, checked against {meta['name']}", size))
                groups.append((f"{meta['name']} (the checksums of {key})", [meta_item], meta_sources))
                continue
            check_disk_space(root, meta["size"])
            run_items([meta_item], meta_sources, fetch, summary)
            if meta_item.name in summary.failed:
                summary.show("")
                raise CaseStudyError(f"cannot get {meta['name']}, which holds {key}'s checksums: "
                                     f"{summary.failed[meta_item.name]}")
        index = compact_ffhq_index(meta_item.target, index_file)
        groups.append((title, image_items(key, spec, root, count, index), chosen))
    if dry_run_only:
        dry_run([(title, items) for title, items, _ in groups], notes, root)
        return
    missing = [i for _, items, _ in groups for i in items if not is_present(i)]
    check_disk_space(root, sum(i.expected_bytes for i in missing)  # + one zip beside its images
                     + max((i.expected_bytes for i in missing if i.archive), default=0))
    for title, items, chosen in groups:
        if progress:
            print(f"== {title} -> {root}", flush=True)
        run_items(items, chosen, fetch, summary)
    if fetch.state().get("pinned"):
        print(f"checksums the upstream does not publish were pinned on first fetch: {fetch.state_file}")


def next_command(dataset: str | None, data_root: str, weights: bool, folder: str = "raw") -> str:
    if not dataset:
        return "casestudy train --weights imagenet (it works offline now)"
    run = "casestudy run --config course" + (" --weights imagenet" if weights else "")
    root = Path(data_root) / folder
    return run if root == Path("data/raw") else f"{run} --data {root} --data-root {data_root}"


# ---------------------------------------------------------------- the ImageNet weights


def fetch_weights(manifest: dict, source: str | None, local: str | None, dry_run_only: bool,
                  progress: bool, summary: Summary) -> None:
    """Put torchvision's ResNet18 ImageNet weights into torch's hub cache, verified.

    The file name and address come from casestudy.model.imagenet_url(), so CASESTUDY_IMAGENET_URL
    points this at a mirror exactly as it does `--weights imagenet`.
    """
    import torch

    from casestudy.model import URL_VARIABLE, imagenet_url

    entry = manifest["files"]["resnet18-imagenet"]
    url = imagenet_url()
    name = url.rsplit("/", 1)[-1]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if name == entry["name"]:
        item = file_item(entry, cache / name, name=f"ImageNet weights {name}")
    else:  # another file named by a mirror: torch's own check, the sha256 prefix in its name
        prefix = re.search(r"-([a-f0-9]+)\.", name)
        if not prefix:
            raise CaseStudyError(f"{URL_VARIABLE}={url}: the file name must end in -<sha256 prefix>.pth "
                                 f"as torchvision's do (e.g. {entry['name']})")
        item = Item(name=f"ImageNet weights {name}", path=name, target=cache / name,
                    checksum=("sha256-prefix", prefix[1]))
    candidates = [{"kind": "http", "url": url}]  # the address `--weights imagenet` itself uses
    if name == entry["name"]:
        candidates += [s for s in entry["sources"] if s.get("url") != url]
    fetch = Fetch(root=cache, progress=progress)
    chosen = src.choose(candidates, source, local, fetch, "resnet18-imagenet")
    if dry_run_only:
        dry_run([("ImageNet weights", [item])], [], cache)
        return
    check_disk_space(cache, 0 if is_present(item) else item.expected_bytes)
    run_items([item], chosen, fetch, summary)
    if is_present(item):
        shutil.rmtree(fetch.work, ignore_errors=True)  # only partial files live there
