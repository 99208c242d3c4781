"""Run a stage or CLI command with readable failures.

A :class:`MovierecError` becomes one line on stderr and exit code 1 (2 for
usage errors), Ctrl-C one line and exit code 130: never a traceback for a
problem the user can fix.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from movierec.errors import LookupFailed, MovierecError

T = TypeVar("T")


def run_cli(main: Callable[[], T], *, exit_code: int = 1) -> T:
    """Call ``main``; turn user errors and interruptions into one line and an exit code."""
    try:
        return main()
    except MovierecError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2 if isinstance(err, LookupFailed) else exit_code) from None
    except KeyboardInterrupt:
        print(
            "interrupted: outputs are written atomically, nothing half-written was kept; "
            "run the command again to finish",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
