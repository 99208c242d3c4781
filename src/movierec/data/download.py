"""Fetch a MovieLens release into ``data/raw/<name>/``, verified.

Sources are tried in this order: a mirror (``MOVIELENS_MIRROR`` or ``data.mirror``:
a folder, a ``file://`` URL or an http(s) base URL, holding the official archive or
an already-extracted release folder), then a previously downloaded archive in the
cache folder, then the official GroupLens URL. Downloads resume, retry and time
out; every archive is checked against its pinned checksum before it is opened,
and the extracted folder is swapped in atomically with a ``MANIFEST.json``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from movierec.config.params import CustomData, DataParams
from movierec.data.manifest import MANIFEST, file_digest, write_manifest
from movierec.data.releases import Release, get_release
from movierec.data.synthetic import generate, write_custom
from movierec.errors import DownloadError
from movierec.store.files import atomic_dir, atomic_path, write_json

CHUNK = 1 << 20

MIRROR_ENV = "MOVIELENS_MIRROR"


def verify_archive(path: Path, release: Release) -> str:
    """Check an archive against the release's pinned checksum; return its sha256."""
    size = path.stat().st_size
    if release.size is not None and size != release.size:
        raise DownloadError(
            f"{path}: {size:,} bytes, but the official {release.archive} has "
            f"{release.size:,} bytes (truncated or a different file); delete it and run again"
        )
    sha256 = file_digest(path, "sha256")
    if release.sha256 is not None and sha256 != release.sha256:
        raise DownloadError(
            f"{path}: checksum mismatch (sha256 {sha256}, expected {release.sha256}); "
            "the file is corrupt or not the official GroupLens archive: delete it and run again"
        )
    if release.sha256 is None and release.md5 is not None:
        md5 = file_digest(path, "md5")
        if md5 != release.md5:
            raise DownloadError(
                f"{path}: checksum mismatch (md5 {md5}, expected {release.md5}); "
                "delete it and run again"
            )
    if release.sha256 is None and release.md5 is None:
        print(
            f"warning: no pinned checksum for {release.archive}; recorded sha256 {sha256}",
            file=sys.stderr,
        )
    return sha256


def resolve_mirror(explicit: str = "") -> str:
    """The mirror to use: the environment variable wins over ``data.mirror``."""
    return os.environ.get(MIRROR_ENV, "").strip() or explicit.strip()


def _mirror_folder(mirror: str) -> Path | None:
    if mirror.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(mirror).path))
    if "://" in mirror:
        return None
    return Path(mirror).expanduser()


def download_url(url: str, target: Path, *, retries: int = 4, timeout: float = 30.0) -> None:
    """Download ``url`` to ``target`` with resume (``target.part``), retries and a progress bar."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(retries):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "movierec"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if have and response.status != 206:  # server ignored the range: start over
                    have = 0
                total = response.headers.get("Content-Length")
                total_bytes = int(total) + have if total else None
                mode = "ab" if have else "wb"
                with (
                    open(part, mode) as out,
                    tqdm(
                        total=total_bytes,
                        initial=have,
                        unit="B",
                        unit_scale=True,
                        desc=target.name,
                        disable=None,
                    ) as bar,
                ):
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            if total_bytes is not None and part.stat().st_size < total_bytes:
                raise ConnectionError(  # closed early without an error: resume from here
                    f"connection closed after {part.stat().st_size:,} of {total_bytes:,} bytes"
                )
            os.replace(part, target)
            return
        except urllib.error.HTTPError as err:
            if err.code == 416:  # range beyond end: the part file is already complete
                os.replace(part, target)
                return
            last_error = err
            if 400 <= err.code < 500:
                break
        except (
            urllib.error.URLError,
            http.client.HTTPException,  # IncompleteRead: the connection dropped mid-file
            TimeoutError,
            ConnectionError,
            OSError,
        ) as err:
            last_error = err
        time.sleep(min(2**attempt, 10))
    reason = getattr(last_error, "reason", last_error)
    raise DownloadError(
        f"could not download {url} ({reason}). If this machine is offline, set "
        f"{MIRROR_ENV} (or data.mirror in params.yaml) to a folder or file:// URL holding "
        f"{target.name} or the extracted release folder"
    )


def _extract(archive: Path, release: Release, dest: Path, source: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            missing = [m for m in release.members if f"{release.folder}/{m}" not in names]
            if missing:
                raise DownloadError(
                    f"{archive}: member file(s) {', '.join(missing)} missing from "
                    f"{release.folder}/; the archive is not a complete {release.name} release"
                )
            with atomic_dir(dest) as tmp:
                for member in release.members:
                    with (
                        zf.open(f"{release.folder}/{member}") as src,
                        open(tmp / member, "wb") as out,
                    ):
                        shutil.copyfileobj(src, out, CHUNK)
                _write_manifest(tmp, release, source)
    except zipfile.BadZipFile as err:
        raise DownloadError(
            f"{archive}: corrupt or truncated zip archive ({err}); delete it and run again"
        ) from None


def _copy_folder(folder: Path, release: Release, dest: Path) -> None:
    missing = [m for m in release.members if not (folder / m).is_file()]
    if missing:
        raise DownloadError(
            f"{folder}: missing {', '.join(missing)}; a {release.name} folder needs "
            f"{', '.join(release.members)}"
        )
    with atomic_dir(dest) as tmp:
        for member in release.members:
            shutil.copyfile(folder / member, tmp / member)
        _write_manifest(tmp, release, str(folder))


def _write_manifest(folder: Path, release: Release, source: str) -> None:
    hashes = {}
    for member in release.members:
        digest = file_digest(folder / member)
        expected = release.member_sha256.get(member)
        if expected is not None and digest != expected:
            raise DownloadError(
                f"{source}: {member} has sha256 {digest}, expected {expected} for the official "
                f"{release.name}; the copy is corrupt or modified"
            )
        hashes[member] = digest
    checked = [m for m in release.members if m in release.member_sha256]
    verified = f"members {', '.join(checked)} against the published sha256" if checked else ""
    if source.endswith(release.archive):
        verified = f"archive {release.archive} against its published checksum" + (
            f"; {verified}" if verified else ""
        )
    if release.n_ratings is not None:
        verified += ("; " if verified else "") + (
            f"rating count against the published {release.n_ratings:,} (at preprocess)"
        )
    manifest = {
        "release": release.name,
        "source": _portable(source),
        "sha256": hashes,
        "verified": verified,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _portable(source: str) -> str:
    """Where a release came from, as the same text on every machine: a URL as it is, a
    mirror's file or folder by its name (its absolute path would make the download
    stage's output, and so every hash after it, depend on where the mirror lives)."""
    return source if "://" in source else f"mirror: {Path(source).name}"


def is_complete(dest: Path, release: Release) -> bool:
    """True when ``dest`` holds every member with the hashes its manifest recorded."""
    manifest_path = dest / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        recorded = json.loads(manifest_path.read_text())["sha256"]
    except (ValueError, KeyError):
        return False
    for member in release.members:
        path = dest / member
        if not path.is_file() or recorded.get(member) != file_digest(path):
            return False
        expected = release.member_sha256.get(member)
        if expected is not None and recorded[member] != expected:
            return False
    return True


def fetch_release(release: Release, dest: Path, *, mirror: str = "", cache_dir: Path) -> str:
    """Make ``dest`` hold the verified member files of ``release``; return where they came from."""
    if is_complete(dest, release):
        return "already present"
    mirror = resolve_mirror(mirror)
    if mirror:
        folder = _mirror_folder(mirror)
        if folder is not None:
            if not folder.is_dir():
                raise DownloadError(f"mirror {mirror}: {folder} is not a folder")
            archive = folder / release.archive
            if archive.is_file():
                verify_archive(archive, release)
                _extract(archive, release, dest, str(archive))
                return str(archive)
            for name in dict.fromkeys((release.name, release.folder)):
                if (folder / name).is_dir():
                    _copy_folder(folder / name, release, dest)
                    return str(folder / name)
            raise DownloadError(
                f"mirror {mirror}: neither {release.archive} nor a {release.name}/ folder is there"
            )
        url = mirror.rstrip("/") + "/" + release.archive
    else:
        url = release.url
    cached = cache_dir / release.archive
    if cached.is_file():
        try:
            verify_archive(cached, release)
        except DownloadError:
            cached.unlink()
    if not cached.is_file():
        download_url(url, cached)
        try:
            verify_archive(cached, release)
        except DownloadError as err:
            cached.unlink(missing_ok=True)
            raise DownloadError(
                str(err).replace(
                    "delete it and run again",
                    f"it came from {url} and was deleted; run again to download it afresh",
                )
            ) from None
    _extract(cached, release, dest, url)
    return url


def _custom_file(role: str, name: str) -> Path:
    """The user's file named by ``data.custom.<role>``; one line when it is not a file."""
    src = Path(name).expanduser()
    if src.is_dir():
        raise DownloadError(
            f"params.yaml: `data.custom.{role}` names {name}, which is a folder; name the "
            f"{role} file inside it (a .csv or .parquet file)"
        )
    if not src.is_file():
        raise DownloadError(f"params.yaml: `data.custom.{role}` names {name}, which does not exist")
    return src


def copy_custom(files: dict[str, str], dest: Path) -> None:
    """Copy a custom data set's files into ``dest`` (as ``ratings.csv`` etc.), atomically."""
    sources: dict[str, str] = {}
    with atomic_dir(dest) as tmp:
        for role, name in files.items():
            if not name:
                continue
            src = _custom_file(role, name)
            suffix = src.suffix.lower()
            if suffix not in (".csv", ".parquet"):
                raise DownloadError(
                    f"{src}: custom {role} must be a .csv or .parquet file (got {suffix or 'no suffix'})"
                )
            with atomic_path(tmp / f"{role}{suffix}") as out:
                shutil.copyfile(src, out)
            sources[f"{role}{suffix}"] = str(src.resolve())
        write_manifest(tmp, "custom", sources)


def fingerprint_custom(files: CustomData, role: str, dest: Path) -> dict[str, object]:
    """Write ``dest/<role>.json``: the path, size and sha256 of the user's custom file.

    DVC hashes the user's file as the ``custom@<role>`` stage's dependency wherever it
    lives; this record is the stage's output and a dependency of ``download``, so a
    changed file reruns the download (and everything after it) on the next ``dvc repro``.
    """
    roles = tuple(CustomData.__dataclass_fields__)
    if role not in roles:
        raise DownloadError(f"custom: no file role {role!r}; the roles are {', '.join(roles)}")
    name = getattr(files, role)
    if not name:
        raise DownloadError(
            f"params.yaml: `data.custom.{role}` is empty; name a file or leave the key out"
        )
    src = _custom_file(role, name)
    record = {
        "role": role,
        "path": str(src.resolve()),
        "bytes": src.stat().st_size,
        "sha256": file_digest(src),
    }
    write_json(dest / f"{role}.json", record)
    return record


def acquire(data: DataParams, seed: int, raw_root: Path, cache_dir: Path) -> str:
    """Make ``raw_root/<dataset>`` hold the data set's raw files; return where they came from."""
    dest = raw_root / data.dataset
    if data.dataset == "synthetic":
        generated = generate(data.synthetic, seed)
        with atomic_dir(dest) as tmp:
            write_custom(generated, tmp)
            names = sorted(p.name for p in tmp.iterdir())
            write_manifest(tmp, "synthetic", {n: f"generator, seed {seed}" for n in names})
        return f"synthetic generator (seed {seed})"
    if data.dataset == "custom":
        copy_custom(
            {
                "ratings": data.custom.ratings,
                "items": data.custom.items,
                "users": data.custom.users,
            },
            dest,
        )
        return data.custom.ratings
    return fetch_release(get_release(data.dataset), dest, mirror=data.mirror, cache_dir=cache_dir)
