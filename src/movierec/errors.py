"""User-facing errors.

Anything raised as a :class:`MovierecError` is printed as one readable line by the
stage scripts and the CLI (no traceback): the message must name the file, line or
parameter at fault and say what to do about it.
"""

from __future__ import annotations


class MovierecError(Exception):
    """An error the user can fix; its message is shown as-is."""


class ConfigError(MovierecError):
    """A bad value in params.yaml or on the command line."""


class DataError(MovierecError):
    """Missing, corrupt or malformed input data."""


class DownloadError(DataError):
    """A release could not be fetched or verified."""


class LookupFailed(MovierecError):
    """An unknown user, movie or title on the command line (exit code 2)."""
