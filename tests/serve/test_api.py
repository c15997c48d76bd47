"""The HTTP API of a real `kplab serve` process: the same records as `kplab predict`, batched."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from kplab.checkpoint import read_meta
from kplab.faces.training.layout import Layout
from kplab.faces.inference.predict import resolve_model
from kplab.serve.service import contour_chains

KPLAB = Path(sys.executable).with_name("kplab")
TOLERANCE_PX = 1e-3


def kplab_predict(*args: str, out: Path) -> dict[str, list[dict]]:
    """`kplab predict default ARGS --backend onnx --out OUT` as a process: records by file name."""
    subprocess.run([str(KPLAB), "predict", "default", *args, "--backend", "onnx", "--out", str(out)],
                   check=True, capture_output=True)
    records: dict[str, list[dict]] = {}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        records.setdefault(Path(record.pop("file")).name, []).append(record)
    return records


def assert_same_faces(api_faces: list[dict], records: list[dict], layout: Layout, where: str):
    assert len(api_faces) == len(records), f"{where}: {len(api_faces)} faces from the API, {len(records)} from predict"
    for face, record in zip(api_faces, records):
        assert record.pop("frame") is None
        assert set(face) == set(record) == {"box", "score", "quality", "keypoints"}, where
        assert list(face["keypoints"]) == list(layout.names), where
        np.testing.assert_allclose(face["box"], record["box"], atol=TOLERANCE_PX, err_msg=where)
        if record["score"] is None:
            assert face["score"] is None, where
        else:
            np.testing.assert_allclose(face["score"], record["score"], atol=TOLERANCE_PX, err_msg=where)
        assert face["quality"] == record["quality"], where
        np.testing.assert_allclose([face["keypoints"][n] for n in layout.names],
                                   [record["keypoints"][n] for n in layout.names], atol=TOLERANCE_PX, err_msg=where)


def post(url: str, path: Path, multipart: bool, params: dict | None = None) -> httpx.Response:
    data = path.read_bytes()
    if multipart:
        return httpx.post(f"{url}/v1/keypoints", files={"image": (path.name, data)}, params=params, timeout=60)
    return httpx.post(f"{url}/v1/keypoints", content=data, params=params, timeout=60)


@pytest.mark.real
def test_40_photos_give_the_records_of_kplab_predict_and_share_model_calls(server, shared_data, tmp_path):
    folder = shared_data / "faces" / "photos"
    photos = sorted(p for p in folder.iterdir() if p.suffix == ".jpg")
    assert len(photos) == 40
    expected = kplab_predict(str(folder), out=tmp_path)
    layout = Layout.from_dict(read_meta(resolve_model("default"))["layout"])
    before = server.health()
    # 8 clients at once, half multipart uploads and half raw bodies.
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda ip: post(server.url, ip[1], multipart=ip[0] % 2 == 0), enumerate(photos)))
    after = server.health()
    for path, response in zip(photos, responses):
        assert response.status_code == 200, response.text
        body = response.json()
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert (body["model"], body["layout"]) == ("faces-default", layout.name)
        assert (body["width"], body["height"]) == (image.shape[1], image.shape[0])
        assert body["ms"] > 0
        assert_same_faces(body["faces"], expected.get(path.name, []), layout, path.name)
    batches = after["batches"]["batches"] - before["batches"]["batches"]
    jobs = after["batches"]["jobs"] - before["batches"]["jobs"]
    print(f"\n40 photos from 8 clients: {jobs} jobs in {batches} model batches")
    assert jobs == 40 and batches < 40  # concurrent requests shared model calls


@pytest.mark.real
@pytest.mark.parametrize("params, flags", [({"tta": "true"}, ["--tta"]), ({"min_score": "1.5"}, ["--min-score", "1.5"]),
                                           ({"min_quality": "0.5"}, ["--min-quality", "0.5"]),
                                           ({"starts": "1", "passes": "2"}, ["--starts", "1", "--passes", "2"])])
def test_query_options_mean_what_predict_flags_mean(server, shared_data, tmp_path, params, flags):
    photo = shared_data / "faces" / "photos" / "Edie_Falco_41.jpg"  # one real face and one false detection
    expected = kplab_predict(str(photo), *flags, out=tmp_path)[photo.name]
    response = post(server.url, photo, multipart=False, params=params)
    assert response.status_code == 200, response.text
    layout = Layout.from_dict(read_meta(resolve_model("default"))["layout"])
    assert_same_faces(response.json()["faces"], expected, layout, f"{photo.name} {params}")
    if "min_score" in params or "min_quality" in params:  # the false detection scores low on both
        assert len(expected) == 1


@pytest.mark.real
def test_detect_false_treats_the_image_as_a_ready_crop(server, shared_data, tmp_path):
    crop = np.load(shared_data / "faces" / "faces15.npz")["images"][0]  # (96, 96) uint8, a val/train crop
    path = tmp_path / "crop.png"
    cv2.imwrite(str(path), crop)
    expected = kplab_predict(str(path), "--no-detect", out=tmp_path / "out")["crop.png"]
    response = post(server.url, path, multipart=True, params={"detect": "false"})
    assert response.status_code == 200, response.text
    layout = Layout.from_dict(read_meta(resolve_model("default"))["layout"])
    assert response.json()["faces"][0]["score"] is None
    assert_same_faces(response.json()["faces"], expected, layout, "crop.png")


def test_model_description_matches_the_model_files(server):
    meta = read_meta(resolve_model("default"))
    layout = Layout.from_dict(meta["layout"])
    model = httpx.get(f"{server.url}/v1/model").json()
    assert model["names"] == list(layout.names) and model["n_points"] == layout.n_points
    assert model["layout"] == layout.name
    assert model["contours"] == contour_chains(layout)
    assert all(0 <= i < layout.n_points for chain in model["contours"] for i in chain)
    assert model["weights_sha256"] == meta["weights_sha256"]
    assert model["n_params"] == meta["n_params"] and model["metrics"] == meta["metrics"]
    assert model["limits"] == {"max_bytes": 10_000_000, "max_pixels": 25_000_000}


def test_contours_become_index_chains_closed_ones_return_to_their_start():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Contour:  # the shape layouts give their contours: points and whether the line closes
        points: tuple
        closed: bool = False

    @dataclass(frozen=True)
    class WithContours:
        contours: tuple

    layout = WithContours((Contour((0, 1, 2)), Contour((3, 4, 5), closed=True), (6, 7)))
    assert contour_chains(layout) == [[0, 1, 2], [3, 4, 5, 3], [6, 7]]
    assert contour_chains(object()) == []


def test_openapi_describes_the_routes_the_server_answers(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path, methods in spec["paths"].items():
        for method in methods:
            if method == "get":
                assert httpx.get(f"{server.url}{path}").status_code == 200, path
    assert {p["name"] for p in spec["paths"]["/v1/keypoints"]["post"]["parameters"]} == {
        "tta", "min_score", "min_quality", "detect", "starts", "passes"}


def test_the_page_and_its_files_are_served_with_a_same_origin_policy(server):
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "one_euro.js", "style.css", "favicon.svg"):
        response = httpx.get(f"{server.url}/static/{asset}")
        assert response.status_code == 200, asset
        text = response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, never fetched
        assert "http://" not in text and "https://" not in text, f"{asset} names another origin"
    assert "https://" not in page.text and "http://" not in page.text
