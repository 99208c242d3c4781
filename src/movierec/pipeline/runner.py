"""Run a stage or CLI command with readable failures.

A :class:`MovierecError` becomes one line on stderr and exit code 1 (2 for
usage errors); an OS error (read-only folder, full disk, missing permission) one
line naming the path; Ctrl-C exit code 130 and SIGTERM (what ``timeout`` and job
schedulers send) exit code 143, both after the same clean-up of temporaries, and
within :data:`EXIT_GRACE_SECONDS` whatever a library's threads are doing.
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


# After Ctrl-C or SIGTERM the process has this long to clean up and exit; then it exits
# regardless. A library's thread or queue that never finishes (a worker blocked on a
# lock, a queue waiting for a task the interrupt cut short) cannot keep it alive: what
# it leaves are temporaries, which the next writer of the same output removes.
EXIT_GRACE_SECONDS = float(os.environ.get("MOVIEREC_EXIT_GRACE", "15"))

INTERRUPTED = (
    "interrupted: no output was replaced by a half-written one (the previous outputs are "
    "still in place); run the command again to finish"
)
TERMINATED = (
    "terminated (SIGTERM): no output was replaced by a half-written one (the previous "
    "outputs are still in place); run the command again to finish"
)


_REPORTED = threading.Event()  # the interruption's one line is out


def _exit_within(seconds: float, code: int, line: str) -> None:
    """Start the grace clock: a daemon timer that ends the process if it is still alive."""

    def force() -> None:
        if not _REPORTED.is_set():
            _say(line)
        os._exit(code)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def _on_sigterm(signum, frame) -> None:
    _exit_within(EXIT_GRACE_SECONDS, 143, TERMINATED)
    raise Terminated()


def _on_sigint(signum, frame) -> None:
    _exit_within(EXIT_GRACE_SECONDS, 130, INTERRUPTED)
    raise KeyboardInterrupt()


_PUNCTUATION = {
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u00a0": " ",
}


def _plain_letters(err: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: ``é`` -> ``e``, anything else without a plain form -> ``?``,
    so a title prints readably on a console that cannot show it."""
    import unicodedata

    bad = err.object[err.start : err.end]  # type: ignore[attr-defined]
    out = []
    for char in bad:
        plain = unicodedata.normalize("NFKD", _PUNCTUATION.get(char, char))
        out.append(plain.encode("ascii", "ignore").decode("ascii") or "?")
    return "".join(out), err.end  # type: ignore[attr-defined]


def readable_output() -> None:
    """Make stdout and stderr degrade instead of failing on characters their encoding
    lacks (an ASCII console, a Windows code page): ``similar "Misérables"`` prints
    ``Miserables`` rather than stopping with UnicodeEncodeError."""
    import codecs

    try:
        codecs.lookup_error("movierec-plain")
    except LookupError:
        codecs.register_error("movierec-plain", _plain_letters)
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding not in ("utf8", "utf16", "utf32") and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="movierec-plain")


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


def _is_dvc(pid: int) -> bool:
    """Whether ``pid`` runs DVC (``dvc repro`` may itself be process 1 in a container)."""
    try:
        return b"dvc" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # cannot tell: do not stop a stage that may have a launcher


def stop_with_launcher(poll_seconds: float = 1.0) -> None:
    """SIGTERM this process when the one that started it exits.

    Killing ``dvc repro`` alone (``kill <pid of dvc>``) would otherwise leave the
    stage running as an orphan, still writing outputs DVC will never record. With
    this, the stage stops as for SIGTERM: one line, temporaries removed, exit 143.
    """
    launcher = launcher_pid()
    if launcher <= 1:
        if launcher == 1 and not _is_dvc(1):  # orphaned before this started: stop now
            raise Terminated()
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
    previous = previous_int = None
    readable_output()
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        previous_int = signal.signal(signal.SIGINT, _on_sigint)
    try:
        return main()
    except MovierecError as err:
        _say(f"error: {err}")
        raise SystemExit(2 if isinstance(err, LookupFailed) else exit_code) from None
    except KeyboardInterrupt:
        _say(INTERRUPTED)
        _REPORTED.set()
        raise SystemExit(130) from None
    except Terminated:
        _say(TERMINATED)
        _REPORTED.set()
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
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)
