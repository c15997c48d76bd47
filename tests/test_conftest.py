"""The `shared_data` fixture: skipped locally where the data is absent, a hard failure under CI=true."""

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py").read_text()
USES_DATA = """
def test_needs_data(shared_data):
    assert (shared_data / "faces").is_dir()

def test_plain():
    pass
"""


@pytest.fixture
def scratch_session(pytester, monkeypatch, tmp_path):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_uses_data=USES_DATA)
    monkeypatch.setenv("KPLAB_SHARED_DATA", str(tmp_path / "nowhere"))
    return pytester


def test_missing_data_fails_the_whole_run_under_ci_with_where_it_should_be(scratch_session, monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    result = scratch_session.runpytest_inprocess("-p", "no:cacheprovider", "--assert=plain")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*CI=true and KPLAB_SHARED_DATA={tmp_path / 'nowhere'} holds no faces/ folder*"])
    assert result.parseoutcomes().get("passed", 0) == 0  # stopped before running anything


def test_missing_data_skips_outside_ci_and_says_where(scratch_session, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = scratch_session.runpytest_inprocess("-p", "no:cacheprovider", "--assert=plain", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*holds no faces/ folder*set CI=true to make this an error*"])


def test_present_data_runs_the_test_under_ci(scratch_session, monkeypatch, tmp_path):
    (tmp_path / "data" / "faces").mkdir(parents=True)
    monkeypatch.setenv("KPLAB_SHARED_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CI", "true")
    scratch_session.runpytest_inprocess("-p", "no:cacheprovider", "--assert=plain").assert_outcomes(passed=2)
