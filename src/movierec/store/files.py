"""Atomic file and directory writes.

Every artifact is written to a temporary sibling and renamed into place, so an
interrupted stage (Ctrl-C, SIGKILL, full disk) never leaves a half-written file
that a later stage would read as valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from movierec.errors import DataError, MovierecError
from movierec.store.paths import in_dvc_cache, rebuild_command

_UMASK = os.umask(0)
os.umask(_UMASK)


def _prefix(target: Path) -> str:
    """Temporaries are ``.<name>.<pid>-<random>.tmp``: the writer's process id tells a
    leftover of a killed writer from the live temporary of another (two tune workers
    writing the same file)."""
    return f".{target.name}.{os.getpid()}-"


def _writer_alive(stale: Path, target: Path) -> bool:
    pid = stale.name[len(target.name) + 2 :].split("-", 1)[0]
    if not pid.isdigit():
        return False  # not ours to keep (an older naming, or a partial name)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Temporaries of ``target`` left by a writer killed mid-way (SIGKILL, power loss);
    those of a writer still running are its own business."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if _writer_alive(stale, target):
            continue
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary is ``.<name>.<random>.tmp``: hidden, and ending in ``.tmp`` so no
    reader that globs ``*.json`` or ``*.parquet`` ever sees it; the next writer of
    the same file removes any left by a killed one. ``suffix`` is accepted for
    callers that name a format, and deliberately not used in the name.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are ordinary files
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as err:
        raise _naming(err, target) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _naming(err: OSError, target: Path) -> OSError:
    """The error with the artifact's path where the library left it out (a full disk
    during ``write_parquet`` says only "No space left on device")."""
    if err.filename is not None:
        return err
    return type(err)(err.errno, err.strerror or str(err), str(target))


def _recover(target: Path) -> None:
    """Clean up after a writer that was killed (SIGKILL, power loss) mid-way.

    Unfinished temporary folders are dropped; if it died between moving the old
    version aside and moving the new one in, the old version is put back.
    """
    _remove_stale(target)
    for old in sorted(target.parent.glob(f".{target.name}.old-*")):
        if not target.exists():
            os.replace(old, target)
        else:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``path`` as a whole on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as err:
        raise _naming(err, target) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as pretty, key-sorted JSON, atomically."""
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _conflicted(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return b"\n<<<<<<< " in b"\n" + head or b"\n>>>>>>> " in head


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Read an artifact inside this block: a damaged or truncated file (a bad zip, a
    short memory map, broken JSON or parquet, merge-conflict markers) becomes one
    :class:`DataError` naming the file and the command that rebuilds it, instead of the
    library's own exception."""
    target = Path(path)
    try:
        yield target
    except (MovierecError, MemoryError, KeyboardInterrupt):
        raise
    except FileNotFoundError as err:
        missing = err.filename or target
        raise DataError(f"{missing}: missing; run `{rebuild_command(missing)}`") from None
    except OSError:
        raise  # permissions, a full disk: stage.describe_os_error names the path
    except Exception as err:
        if _conflicted(target):
            raise DataError(
                f"{target}: holds git merge-conflict markers (<<<<<<<); resolve the conflict "
                f"or write it again with `{rebuild_command(target)}`"
            ) from None
        reason = " ".join(str(err).split())[:120] or "no detail"
        raise DataError(
            f"{target}: damaged or unreadable ({type(err).__name__}: {reason}); write it again "
            f"with `{rebuild_command(target)}`"
            + (f" (or restore it with `dvc checkout {target}`)" if in_dvc_cache(target) else "")
        ) from None


def state_digest(model_dir: Path) -> str:
    """SHA-256 of every file of a trained model's folder (``model.npz``, word2vec's
    ``vectors.kv``, the refit ...): rows and maps belong to that state only."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
