"""User-facing errors.

Every problem a user can cause (a missing file, a corrupt video, a hands file that does not
match the clip, ...) is raised as :class:`CohesivError` with a message that names the file and
what is wrong. The command line prints that message on one line and exits with status 2;
library users catch it like any other exception.
"""

from __future__ import annotations

from pathlib import Path


class CohesivError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class InputError(CohesivError, ValueError):
    """Bad input data: wrong format, wrong values, wrong shape."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        """Build ``"<path>: <problem>"`` (or just ``problem`` when there is no file)."""
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")
