"""Read data_manifest.yaml: every external file the package fetches, checked against a schema.

Book chapter 01_data. The manifest names, for each dataset and file, what it is, its
licence and citation, its label, the sources it can come from (in order of preference)
and, for every file or archive, its size and checksum where the upstream publishes them (and,
optionally, an archive's `members`: the image paths a folder standing in for it must hold).
A typo is a one-line error naming the key, never a KeyError halfway through a download.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import jsonschema
import yaml

from casestudy import CaseStudyError

MANIFEST_VARIABLE = "CASESTUDY_MANIFEST"  # points `data fetch` at another manifest
NAME = "data_manifest.yaml"

_text = {"type": "string", "minLength": 1}
_count = {"type": "integer", "minimum": 1}
_md5 = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_sha256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_unpublished = {"type": "null"}  # an archive whose checksum the upstream does not publish


def _closed(required: list[str], **properties) -> dict:
    """An object with exactly these keys: an unknown (misspelt) key is an error."""
    return {"type": "object", "required": required, "properties": properties,
            "additionalProperties": False}


def _one_of(key: str, variants: dict) -> dict:
    """Objects told apart by `key` (kind, layout): each variant is checked on its own."""
    return {"type": "object", "required": [key], "properties": {key: {"enum": list(variants)}},
            "allOf": [{"if": {"properties": {key: {"const": value}}}, "then": schema}
                      for value, schema in variants.items()]}


SOURCE = _one_of("kind", {
    "drive": _closed(["kind"], kind=_text, description=_text,  # a file id, a folder,
                     id=_text, folder=_text, subfolder=_text),  # or per-file ids from metadata
    "http": _closed(["kind", "url"], kind=_text, description=_text, url=_text),
    "kaggle": _closed(["kind", "dataset"], kind=_text, description=_text, dataset=_text),
    "local": _closed(["kind", "path"], kind=_text, description=_text, path=_text),
})
SOURCES = {"type": "array", "minItems": 1, "items": SOURCE}
ABOUT = {"description": _text, "licence": _text, "citation": _text, "homepage": _text,
         "label": {"enum": ["real", "fake"]}, "into": _text, "per_unit": _count}
REQUIRED = ["description", "licence", "citation", "label", "into", "layout", "per_unit", "sources"]
DATASET = _one_of("layout", {
    "images": _closed([*REQUIRED, "units", "approx_bytes_per_image", "checksums"], **ABOUT,
                      layout=_text, units=_count, approx_bytes_per_image=_count, checksums=_text,
                      sources=SOURCES),
    "archives": _closed([*REQUIRED, "approx_bytes_per_archive", "archives"], **ABOUT,
                        layout=_text, approx_bytes_per_archive=_count, checksums_note=_text,
                        sources=SOURCES, archives={"type": "array", "minItems": 1, "items": _closed(
                            ["name", "size"], name=_text, drive_id=_text,
                            members={"type": "array", "minItems": 1, "items": _text},  # image paths
                            size={"type": ["integer", "null"], "minimum": 1},
                            sha256={"anyOf": [_sha256, _unpublished]}, md5=_md5)}),
})
FILE = {"allOf": [
    _closed(["name", "description", "licence", "citation", "size", "sources"],
            description=_text, licence=_text, citation=_text, homepage=_text, name=_text,
            into={"enum": ["torch-hub", "fetch-cache"]}, size=_count, sha256=_sha256, md5=_md5,
            sources=SOURCES),
    {"anyOf": [{"required": ["sha256"]}, {"required": ["md5"]}]},
]}
SCHEMA = _closed(
    ["version", "collections", "datasets", "files"],
    version={"const": 1},
    collections={"type": "object", "additionalProperties": _closed(
        ["description", "folder", "real", "fake"], description=_text, folder=_text,
        real=_text, fake=_text, default_real=_count, default_fake=_count)},
    datasets={"type": "object", "additionalProperties": DATASET},
    files={"type": "object", "additionalProperties": FILE},
)


def manifest_path() -> Path:
    """Find data_manifest.yaml: $CASESTUDY_MANIFEST, the repository root, or the installed copy."""
    if os.environ.get(MANIFEST_VARIABLE):
        return Path(os.environ[MANIFEST_VARIABLE])
    for candidate in (Path(__file__).resolve().parents[1] / NAME,  # a checkout or editable install
                      Path(sysconfig.get_path("data")) / "share" / "casestudy" / NAME):  # a wheel
        if candidate.is_file():
            return candidate
    raise CaseStudyError(f"{NAME} not found beside the package nor in share/casestudy: "
                         f"reinstall casestudy or set {MANIFEST_VARIABLE}=PATH")


def load_manifest(path: str | Path | None = None) -> dict:
    """Load and validate the manifest; a problem is one line naming the file and the key."""
    path = Path(path) if path else manifest_path()
    try:
        manifest = yaml.safe_load(path.read_text())
    except OSError as err:
        raise CaseStudyError(f"cannot read the manifest {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise CaseStudyError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    validator = jsonschema.Draft202012Validator(SCHEMA)
    prefer_typos = jsonschema.exceptions.by_relevance(strong={"additionalProperties"})
    error = jsonschema.exceptions.best_match(validator.iter_errors(manifest), key=prefer_typos)
    if error is not None:
        raise CaseStudyError(f"{path}: {describe(error)}; fix the manifest or set {MANIFEST_VARIABLE}")
    for name, collection in manifest["collections"].items():
        for label in ("real", "fake"):
            part = collection[label]
            if manifest["datasets"].get(part, {}).get("label") != label:
                raise CaseStudyError(f"{path}: collections.{name}.{label} names {part!r}, which is not "
                                     f"a dataset labelled {label} under datasets")
    for name, dataset in manifest["datasets"].items():
        if Path(dataset["into"]).parts[0] != dataset["label"]:
            raise CaseStudyError(f"{path}: datasets.{name}.into must start with {dataset['label']}/ "
                                 f"(a dataset is a folder with real/ and fake/ below it)")
        if dataset["layout"] == "images" and dataset["checksums"] not in manifest["files"]:
            raise CaseStudyError(f"{path}: datasets.{name}.checksums names {dataset['checksums']!r}, "
                                 f"which is not under files")
    return manifest


def describe(error: jsonschema.ValidationError) -> str:
    """Say where a schema error is and what is wrong, in the manifest's own key names."""
    where = ".".join(str(p) for p in error.absolute_path) or "the top level"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = ", ".join(error.schema.get("properties", {}))
        return f"unknown key {', '.join(unknown)} at {where} (known: {known})"
    if error.validator == "required":
        return f"missing key at {where}: {error.message}"
    return f"at {where}: {error.message}"
