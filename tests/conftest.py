"""Shared fixtures. `shared_data` is the one way tests reach ../shared/data (never copied into the repo)."""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import Phase, settings

# `make mutate` runs with --hypothesis-profile=mutation: a failing property counts as a kill at once,
# without minutes of shrinking the counterexample.
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate], deadline=None)

pytest_plugins = ["pytester"]  # tests/test_conftest.py runs this file's hooks in a scratch session

# KPLAB_TEST_THREADS: `make mutate` runs one thread per mutmut worker; two threads per worker on a busy
# 2-core machine spin-wait for each other (README "Mutation testing" has the measurement).
torch.set_num_threads(int(os.environ.get("KPLAB_TEST_THREADS", 0)) or min(2, os.cpu_count() or 1))
if os.environ.get("KPLAB_MUTATION"):
    # `make mutate` forks each mutant's test run from one warm process: import there, once, what the
    # tests would otherwise import lazily in every fork (a torch optimizer's constructor imports
    # torch._dynamo, 1.4 s; the report figures import matplotlib and PIL).
    import PIL.Image  # noqa: F401
    import torch._dynamo  # noqa: F401

    import kplab.faces.training.report  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    """KPLAB_SHARED_DATA when set (then nothing else is tried), else ../shared/data beside the repo
    or beside the worktrees folder."""
    env = os.environ.get("KPLAB_SHARED_DATA")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
    return next((c for c in candidates if (c / "faces").is_dir()), None)


def _ci() -> bool:
    """CI sets CI=true (GitHub, GitLab and most runners do); there a missing data folder is an error."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_data_message() -> str:
    env = os.environ.get("KPLAB_SHARED_DATA")
    if env:
        return f"KPLAB_SHARED_DATA={env} holds no faces/ folder: point it at the shared data (faces/ and mnist/)"
    where = [str(REPO.parent / "shared" / "data"), str(REPO.parent.parent / "shared" / "data")]
    return (f"../shared/data not found: the real-data tests need it at {where[0]} (or {where[1]} from a "
            f"worktree), holding faces/ and mnist/, or at the path in KPLAB_SHARED_DATA")


def pytest_collection_modifyitems(config, items):
    """Under CI=true, stop before running anything when collected tests need data that is not there."""
    if _ci() and any("shared_data" in getattr(item, "fixturenames", ()) for item in items) \
            and _find_shared_data() is None:
        pytest.exit("CI=true and " + missing_data_message(), returncode=pytest.ExitCode.TESTS_FAILED)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder. Where it is absent the tests that need it are skipped, except
    under CI=true, where they fail: a CI run without the data must not go green without one accuracy check."""
    found = _find_shared_data()
    if found is None:
        if _ci():
            pytest.fail("CI=true and " + missing_data_message(), pytrace=False)
        pytest.skip(missing_data_message() + " (set CI=true to make this an error)")
    return found
