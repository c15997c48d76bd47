"""The one place that talks to the terminal during long work: a tqdm bar and status lines on stderr."""

import os
import sys

from tqdm.auto import tqdm

# Under torchrun only rank 0 talks: N copies of every line and bar would bury the one that matters.
_SILENT = int(os.environ.get("RANK", "0")) != 0


def bar(iterable=None, *, desc: str = "", total: int | None = None, leave: bool = False):
    """A progress bar on stderr; `.set_postfix(loss=...)` shows live numbers."""
    # disable=None: a live bar on a terminal, nothing in logs and pipes (epoch lines still come via `say`).
    return tqdm(iterable, desc=desc, total=total, leave=leave, file=sys.stderr, dynamic_ncols=True,
                disable=True if _SILENT else None)


def say(message: str) -> None:
    """One status line on stderr, written so it does not tear an active bar."""
    if _SILENT:
        return
    tqdm.write(message, file=sys.stderr)
