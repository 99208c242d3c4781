"""Run a stage or CLI command with readable failures.

A :class:`MovierecError` becomes one line on stderr and exit code 1 (2 for
usage errors); an OS error (read-only folder, full disk, missing permission) one
line naming the path; Ctrl-C exit code 130 and SIGTERM (what ``timeout`` and job
schedulers send) exit code 143, both after the same clean-up of temporaries.
Anything unforeseen is still one line (``MOVIEREC_DEBUG=1`` shows the traceback):
no traceback reaches a user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from movierec.errors import LookupFailed, MovierecError

T = TypeVar("T")


class Terminated(BaseException):
    """SIGTERM, raised where the process is so ``finally`` blocks clean up as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def describe_os_error(err: OSError) -> str:
    """One line naming the path and what to do."""
    advice = {
        errno.ENOSPC: "the disk is full; free some space and run the command again",
        errno.EROFS: "the folder is on a read-only file system; run from a writable copy",
        errno.EACCES: "permission denied; make it writable for this user (chmod / chown)",
        errno.EPERM: "permission denied; make it writable for this user (chmod / chown)",
        errno.ENOENT: "no such file or folder",
    }.get(err.errno)
    if err.filename:
        return f"{err.filename}: {advice or err.strerror or err}"
    return f"{advice} ({err})" if advice else str(err)  # e.g. polars names the path itself


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish", "busybox"}


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(command name, parent pid) of ``pid`` from /proc; None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    return name, int(text[text.rindex(")") + 2 :].split()[1])


def launcher_pid() -> int:
    """The process that started this one, looking through the shell DVC runs a
    stage's command with (``$SHELL -c ...``) to DVC itself."""
    pid = os.getppid()
    stat = _proc_stat(pid)
    if stat is not None and stat[0] in SHELLS and stat[1] > 1:
        return stat[1]
    return pid


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    stat = Path(f"/proc/{pid}/status")
    return stat.exists() and "State:\tZ" in stat.read_text()  # exited, not yet reaped


def stop_with_launcher(poll_seconds: float = 1.0) -> None:
    """SIGTERM this process when the one that started it exits.

    Killing ``dvc repro`` alone (``kill <pid of dvc>``) would otherwise leave the
    stage running as an orphan, still writing outputs DVC will never record. With
    this, the stage stops as for SIGTERM: one line, temporaries removed, exit 143.
    """
    launcher = launcher_pid()
    if launcher <= 1:
        return

    def watch() -> None:
        try:
            handle = os.pidfd_open(launcher)  # Linux: readable once the process exits
        except (AttributeError, OSError):
            handle = None
        if handle is not None:
            select.select([handle], [], [])
        else:
            while not _gone(launcher):
                time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-launcher", daemon=True).start()


def run_cli(main: Callable[[], T], *, exit_code: int = 1) -> T:
    """Call ``main``; turn every failure and interruption into one line and an exit code."""
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return main()
    except MovierecError as err:
        _say(f"error: {err}")
        raise SystemExit(2 if isinstance(err, LookupFailed) else exit_code) from None
    except KeyboardInterrupt:
        _say(
            "interrupted: outputs are written atomically, nothing half-written was kept; "
            "run the command again to finish"
        )
        raise SystemExit(130) from None
    except Terminated:
        _say(
            "terminated (SIGTERM): outputs are written atomically, nothing half-written was "
            "kept; run the command again to finish"
        )
        raise SystemExit(143) from None
    except OSError as err:
        _say(f"error: {describe_os_error(err)}")
        raise SystemExit(exit_code) from None
    except MemoryError:
        _say("error: out of memory; lower evaluate.user_chunk or the batch sizes in params.yaml")
        raise SystemExit(exit_code) from None
    except Exception as err:
        if os.environ.get("MOVIEREC_DEBUG"):
            raise
        text = " ".join(str(err).split()) or "no message"
        _say(
            f"error: unexpected {type(err).__name__}: {text} (MOVIEREC_DEBUG=1 shows the "
            "traceback; please report it)"
        )
        raise SystemExit(exit_code) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
