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
import signal
import sys
from collections.abc import Callable
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
