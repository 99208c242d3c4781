"""Fetching, verifying and extracting releases; mirrors; clear failures."""

import dataclasses
import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from movierec.config.params import parse_params
from movierec.data import download
from movierec.data.download import acquire, fetch_release, is_complete
from movierec.data.releases import RELEASES, Release
from movierec.data.synthetic import write_native
from movierec.errors import ConfigError, DownloadError


def _zip_release(tiny, tmp_path: Path, name: str = "ml-latest-small") -> tuple[Path, Release]:
    """A synthetic archive in the release's layout, and a release entry pinned to it."""
    rel = RELEASES[name]
    src = tmp_path / "src" / rel.folder
    write_native(tiny, name, src)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / rel.archive
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"{rel.folder}/{f.name}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    pinned = dataclasses.replace(
        rel, size=archive.stat().st_size, sha256=digest, md5=None, member_sha256={}
    )
    return archive, pinned


def test_archive_from_mirror_folder_and_file_url(tiny, tmp_path: Path):
    archive, rel = _zip_release(tiny, tmp_path)
    for i, mirror in enumerate((str(archive.parent), archive.parent.as_uri())):
        dest = tmp_path / f"raw{i}"
        source = fetch_release(rel, dest, mirror=mirror, cache_dir=tmp_path / "cache")
        assert source == str(archive)
        assert sorted(p.name for p in dest.iterdir()) == sorted([*rel.members, "MANIFEST.json"])
        assert is_complete(dest, rel)
        assert (
            fetch_release(rel, dest, mirror=mirror, cache_dir=tmp_path / "cache")
            == "already present"
        )


def test_env_mirror_wins(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive, rel = _zip_release(tiny, tmp_path)
    monkeypatch.setenv("MOVIELENS_MIRROR", str(archive.parent))
    assert fetch_release(
        rel, tmp_path / "raw", mirror="/nonexistent", cache_dir=tmp_path / "c"
    ) == str(archive)


def test_truncated_archive(tiny, tmp_path: Path):
    archive, rel = _zip_release(tiny, tmp_path)
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DownloadError, match="truncated"):
        fetch_release(rel, tmp_path / "raw", mirror=str(archive.parent), cache_dir=tmp_path / "c")
    assert not (tmp_path / "raw").exists()


def test_checksum_mismatch(tiny, tmp_path: Path):
    archive, rel = _zip_release(tiny, tmp_path)
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_release(rel, tmp_path / "raw", mirror=str(archive.parent), cache_dir=tmp_path / "c")
    assert not (tmp_path / "raw").exists()


def test_corrupt_zip_with_right_checksum(tiny, tmp_path: Path):
    archive, rel = _zip_release(tiny, tmp_path)
    archive.write_bytes(b"not a zip at all" * 100)
    rel = dataclasses.replace(
        rel, size=None, sha256=hashlib.sha256(archive.read_bytes()).hexdigest()
    )
    with pytest.raises(DownloadError, match="corrupt or truncated zip"):
        fetch_release(rel, tmp_path / "raw", mirror=str(archive.parent), cache_dir=tmp_path / "c")


def test_missing_member_in_archive(tiny, tmp_path: Path):
    archive, rel = _zip_release(tiny, tmp_path)
    rel = dataclasses.replace(rel, members=(*rel.members, "links.csv"))
    with pytest.raises(DownloadError, match="links.csv missing"):
        fetch_release(rel, tmp_path / "raw", mirror=str(archive.parent), cache_dir=tmp_path / "c")
    assert not (tmp_path / "raw").exists()
    assert not list(tmp_path.glob(".raw.*")), "no temporary folder is left behind"


def test_extracted_folder_mirror_is_verified_per_file(tiny, tmp_path: Path):
    rel = RELEASES["ml-100k"]
    folder = tmp_path / "mirror" / "ml-100k"
    write_native(tiny, "ml-100k", folder)  # synthetic files cannot match the real hashes
    with pytest.raises(DownloadError, match="u.data has sha256 .* expected"):
        fetch_release(rel, tmp_path / "raw", mirror=str(folder.parent), cache_dir=tmp_path / "c")
    assert not (tmp_path / "raw").exists()


def test_mirror_without_the_release(tmp_path: Path):
    with pytest.raises(DownloadError, match="neither ml-1m.zip nor a ml-1m/ folder"):
        fetch_release(
            RELEASES["ml-1m"], tmp_path / "raw", mirror=str(tmp_path), cache_dir=tmp_path / "c"
        )


def test_offline_without_mirror_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    rel = dataclasses.replace(RELEASES["ml-100k"])
    monkeypatch.setattr(Release, "url", property(lambda self: f"http://127.0.0.1:9/{self.archive}"))
    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    with pytest.raises(DownloadError) as err:
        fetch_release(rel, tmp_path / "raw", cache_dir=tmp_path / "cache")
    assert "MOVIELENS_MIRROR" in str(err.value)
    assert not (tmp_path / "cache" / "ml-100k.zip").exists()


def test_unknown_dataset_name(tmp_path: Path):
    from movierec.data.releases import get_release

    with pytest.raises(ConfigError, match="`data.dataset` is 'ml-5m'"):
        get_release("ml-5m")


def test_synthetic_and_custom_acquire(tiny, tmp_path: Path):
    params = parse_params(
        {
            "data": {
                "dataset": "synthetic",
                "synthetic": {"n_users": 30, "n_items": 40, "n_ratings": 300},
            }
        }
    )
    acquire(params.data, params.seed, tmp_path / "raw", tmp_path / "cache")
    assert (tmp_path / "raw" / "synthetic" / "ratings.parquet").is_file()

    src = tmp_path / "mine"
    src.mkdir()
    (src / "r.csv").write_text("user_id,item_id,rating\n1,2,3\n")
    params = parse_params(
        {"data": {"dataset": "custom", "custom": {"ratings": str(src / "r.csv")}}}
    )
    acquire(params.data, params.seed, tmp_path / "raw", tmp_path / "cache")
    assert (tmp_path / "raw" / "custom" / "ratings.csv").read_text().startswith("user_id")

    params = parse_params(
        {"data": {"dataset": "custom", "custom": {"ratings": str(src / "nope.csv")}}}
    )
    with pytest.raises(DownloadError, match="data.custom.ratings"):
        acquire(params.data, params.seed, tmp_path / "raw2", tmp_path / "cache")


def test_real_mirror_folder_and_archive(mirror: Path, tmp_path: Path):
    got = fetch_release(
        RELEASES["ml-100k"], tmp_path / "a", mirror=str(mirror), cache_dir=tmp_path / "c"
    )
    assert got == str(mirror / "ml-100k")
    got = fetch_release(
        RELEASES["ml-latest-small"],
        tmp_path / "b",
        mirror=mirror.as_uri(),
        cache_dir=tmp_path / "c",
    )
    assert got == str(mirror / "ml-latest-small.zip")
    shutil.rmtree(tmp_path / "a")


def test_the_manifest_is_the_same_wherever_the_mirror_lives(tiny, tmp_path: Path):
    """The download stage's output (and every hash after it) must not depend on the
    mirror's absolute path, or a fresh clone's `dvc repro` changes dvc.lock."""
    archive, rel = _zip_release(tiny, tmp_path)
    elsewhere = tmp_path / "other" / "place"
    elsewhere.mkdir(parents=True)
    shutil.copy(archive, elsewhere / archive.name)
    manifests = []
    for i, mirror in enumerate((archive.parent, elsewhere)):
        dest = tmp_path / f"raw{i}"
        fetch_release(rel, dest, mirror=str(mirror), cache_dir=tmp_path / "cache")
        manifests.append((dest / "MANIFEST.json").read_bytes())
    assert manifests[0] == manifests[1]
    assert b"mirror: " + archive.name.encode() in manifests[0]
