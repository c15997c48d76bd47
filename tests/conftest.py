"""Shared fixtures. `shared_data` is the one way tests reach ../shared/data (never copied into the repo)."""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    env = os.environ.get("KPLAB_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
    return next((c for c in candidates if (c / "faces").is_dir()), None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder; tests that need it are skipped where it is absent."""
    found = _find_shared_data()
    if found is None:
        pytest.skip("../shared/data not found (set KPLAB_SHARED_DATA to its path)")
    return found
