"""`kplab serve` as a command: clear errors before binding, and --workers processes that all serve."""

import httpx
from click.testing import CliRunner

from kplab.cli import main


def test_a_missing_model_is_one_clear_line_before_anything_binds(tmp_path):
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "no-such-model"), "--port", "1"])
    assert result.exit_code == 2
    assert "no-such-model: no such model directory or .onnx file" in result.output


def test_bad_limits_are_refused_by_the_command():
    result = CliRunner().invoke(main, ["serve", "default", "--max-batch", "0"])
    assert result.exit_code == 2 and "--max-batch" in result.output


def test_framing_flags_take_the_bounds_a_request_has():
    from kplab.faces.inference.predict import STARTS
    from kplab.serve.service import MAX_PASSES

    for flag, top in (("--starts", len(STARTS)), ("--passes", MAX_PASSES)):
        result = CliRunner().invoke(main, ["serve", "default", flag, str(top + 1)])
        assert result.exit_code == 2 and f"{top + 1} is not in the range 1<=x<={top}" in result.output


def test_workers_each_load_the_model_and_answer(start_server, synthetic_face):
    import cv2

    server = start_server("default", "--workers", "2", "--max-batch", "4")
    png = cv2.imencode(".png", synthetic_face)[1].tobytes()
    for _ in range(4):
        response = httpx.post(f"{server.url}/v1/keypoints", content=png, timeout=60)
        assert response.status_code == 200 and len(response.json()["faces"]) == 1
    assert httpx.get(f"{server.url}/v1/model").json()["batching"]["max_batch"] == 4
