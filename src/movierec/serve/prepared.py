"""Blends answered from rows prepared at load, so a request costs what one model's does.

A blend scores a user by asking every member for that user's full row and combining
them: ten members, ten models' work per request (the ranking blend, validation's usual
pick, answered 250 requests a second where ``ease`` alone answered 6,600). The known
users are known at load, so the server scores all of them once (in the background,
in blocks of users, with exactly the blend's own ``score_users``: the same top-10 for
every user of ml-100k) and a request only reads its row.
Where the rows would not fit ``budget_mib`` (a catalogue of tens of thousands of
movies times as many users), the blend answers per request as before.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

from movierec.models.base import Recommender

BUDGET_MIB = 512  # the most memory prepared rows may take per blend
BLOCK = 64  # users per block at load: the rows a request would compute, 64 at a time


class PreparedRows:
    """``model`` with every known user's full row computed once, in the background so
    the server starts as fast as before (until the rows are ready, requests are scored
    by the model as before); unknown input (a new user's ratings) goes to the model."""

    def __init__(self, model: Recommender, n_users: int, block: int = BLOCK) -> None:
        self.model, self.n_users, self.block = model, n_users, block
        self.rows_: np.ndarray | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._fill, name="movierec-prepare", daemon=True).start()

    def _fill(self) -> None:
        try:
            rows = None
            for start in range(0, self.n_users, self.block):
                users = np.arange(start, min(start + self.block, self.n_users))
                block = np.asarray(self.model.score_users(users), dtype=np.float32)
                if rows is None:
                    rows = np.empty((self.n_users, block.shape[1]), dtype=np.float32)
                rows[users] = block
            self.rows_ = rows
        except Exception as err:  # noqa: BLE001 - the model still answers per request
            print(f"serve: {self.model.name}: rows not prepared ({err})", file=sys.stderr)
        finally:
            self.ready.set()

    def wait(self, seconds: float | None = None) -> bool:
        """Until the rows are prepared (or could not be); whether they are."""
        self.ready.wait(seconds)
        return self.rows_ is not None

    def score_users(self, users: np.ndarray) -> np.ndarray:
        rows = self.rows_
        return self.model.score_users(users) if rows is None else rows[np.asarray(users)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def prepared(model: Recommender, n_users: int, n_items: int, budget_mib: float = BUDGET_MIB):
    """The blend with its rows prepared when they fit ``budget_mib``, else the blend."""
    if n_users * n_items * 4 > budget_mib * 2**20:
        return model
    return PreparedRows(model, n_users)
