"""``MANIFEST.json``: what the download stage put in ``data/raw/<dataset>``, hash by hash.

Every reader checks the files against it before parsing (:func:`verify_manifest`),
so a raw file changed or corrupted after download is refused instead of being
parsed into different data. Custom files record the user's original path, so
messages can name the file the user should fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from movierec.errors import DataError

MANIFEST = "MANIFEST.json"
CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (archives can be hundreds of MB)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path, release: str, sources: dict[str, str]) -> dict[str, str]:
    """Hash every file of ``folder`` (``sources``: file name -> where it came from)."""
    hashes = {name: file_digest(folder / name) for name in sorted(sources)}
    manifest = {"release": release, "sha256": hashes, "sources": dict(sorted(sources.items()))}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return hashes


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        manifest["sha256"].items()
    except (ValueError, KeyError, AttributeError):
        raise DataError(f"{path}: unreadable; run `dvc repro -f download`") from None
    return manifest


def verify_manifest(folder: Path) -> dict | None:
    """Refuse files that differ from what the download stage recorded (if it recorded any)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    for name, expected in sorted(manifest["sha256"].items()):
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing (listed in {MANIFEST}); run `dvc repro -f download`")
        if file_digest(path) != expected:
            raise DataError(
                f"{path}: changed since the download stage checked it (sha256 differs from "
                f"{MANIFEST}); run `dvc repro -f download` to fetch it again"
            )
    return manifest


def source_of(folder: Path, message: str) -> str:
    """``message`` with paths of copies under ``folder`` replaced by the user's originals."""
    manifest = read_manifest(folder) or {}
    for name, source in (manifest.get("sources") or {}).items():
        message = message.replace(str(folder / name), source)
    return message
