"""The page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
a photo upload draws exactly the API's keypoints, the webcam path (Chromium's fake camera playing a
video the test writes) returns keypoints frame after frame, and the page's One-Euro filter is the
Python one."""

import json
import time

import cv2
import httpx
import numpy as np
import pytest

from kplab.faces.inference.smoothing import smooth_sequence

POINT_RGB = (0xFF, 0x5C, 0x7A)  # COLORS.point in app.js
CONTOUR_RGB = (120, 200, 255)   # COLORS.contour in app.js (alpha 0.9)


def wait(driver, condition, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"page: {what} not reached within {timeout} s; console: {driver.get_log('browser')}")


def open_page(driver, server):
    driver.get(server.url + "/")
    wait(driver, "return document.getElementById('stage').dataset.ready === 'true'", what="model loaded")


def upload(driver, path):
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('stage').dataset.state = 'sent'")
    driver.find_element(By.ID, "file").send_keys(str(path))
    state = wait(driver, "const s = document.getElementById('stage').dataset.state;"
                         "return s === 'photo' || s === 'error' ? s : null", what="upload answered")
    return state


def drawn_faces(driver) -> list[dict]:
    return json.loads(driver.execute_script("return document.getElementById('stage').dataset.faces"))


def canvas_pixels_at_keypoints(driver, faces) -> list[list[int]]:
    """RGBA of the photo canvas at every keypoint's centre, placed as the page places them."""
    return driver.execute_script("""
        const faces = arguments[0];
        const canvas = document.getElementById('canvas');
        const scale = parseFloat(canvas.dataset.scale);
        const shift = 0.5 - state.model.pixel_centre;
        const ctx = canvas.getContext('2d');
        const out = [];
        for (const face of faces) for (const name of state.model.names) {
            const [x, y] = face.keypoints[name];
            out.push(Array.from(ctx.getImageData(Math.floor((x + shift) * scale), Math.floor((y + shift) * scale), 1, 1).data));
        }
        return out;""", faces)


def drawn_dot_centres(driver, faces, pixel_centre: float) -> tuple[np.ndarray, np.ndarray]:
    """(centres of the point-coloured dots near each keypoint, where the keypoints belong), both in
    canvas pixels. A dot's centre is the mean position of the point-coloured pixels in a small window
    around where it belongs; the page's own placement code is not used for the expected position."""
    scale = float(driver.execute_script("return document.getElementById('canvas').dataset.scale"))
    expected = np.array([[(x - pixel_centre + 0.5) * scale, (y - pixel_centre + 0.5) * scale]
                         for face in faces for x, y in face["keypoints"].values()])
    found = driver.execute_script("""
        const [points, rgb] = arguments;
        const ctx = document.getElementById('canvas').getContext('2d');
        const h = 4;
        return points.map(([ex, ey]) => {
            const x0 = Math.floor(ex) - h, y0 = Math.floor(ey) - h, n = 2 * h + 1;
            const data = ctx.getImageData(x0, y0, n, n).data;
            let sx = 0, sy = 0, count = 0;
            for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
                const k = 4 * (j * n + i);
                const d = Math.max(Math.abs(data[k] - rgb[0]), Math.abs(data[k + 1] - rgb[1]), Math.abs(data[k + 2] - rgb[2]));
                if (d < 40) { sx += x0 + i + 0.5; sy += y0 + j + 0.5; count += 1; }
            }
            return count ? [sx / count, sy / count] : [NaN, NaN];
        });""", expected.tolist(), list(POINT_RGB))
    return np.array(found, float), expected


def assert_only_same_origin_requests(driver, server):
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(server.url) or u.startswith("blob:") for u in urls), urls
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


@pytest.mark.real
def test_a_real_photo_upload_draws_exactly_the_api_keypoints(server, open_browser, shared_data, screenshots):
    photo = shared_data / "faces" / "photos" / "Edie_Falco_41.jpg"  # a real face and a false detection
    api = httpx.post(f"{server.url}/v1/keypoints", content=photo.read_bytes(), timeout=60).json()
    driver = open_browser()
    open_page(driver, server)
    assert upload(driver, photo) == "photo"
    faces = drawn_faces(driver)
    assert faces == api["faces"] and len(faces) == 2
    # The JSON beside the photo is the response.
    shown = json.loads(driver.execute_script("return document.getElementById('json').textContent"))
    assert {k: v for k, v in shown.items() if k != "ms"} == {k: v for k, v in api.items() if k != "ms"}
    # Every keypoint is really drawn where the API put it: a dot of the point colour centred there
    # (to a fraction of a pixel, so a half-pixel slip in the pixel convention shows).
    pixel_centre = httpx.get(f"{server.url}/v1/model").json()["pixel_centre"]
    found, expected = drawn_dot_centres(driver, faces, pixel_centre)
    assert len(found) == 2 * len(api["faces"][0]["keypoints"]) and np.isfinite(found).all()
    error = found - expected
    print(f"\ndrawn dots vs API keypoints (canvas px): median {np.median(error, 0).round(3)}, "
          f"max |error| {np.abs(error).max():.2f}")
    assert np.abs(np.median(error, 0)).max() < 0.2 and np.abs(error).max() < 1.0
    assert driver.execute_script("return document.getElementById('stat-faces').textContent") == "2"
    driver.save_screenshot(str(screenshots / "photo.png"))
    assert_only_same_origin_requests(driver, server)


def test_contour_lines_follow_the_layout(server, open_browser, synthetic_face, tmp_path, screenshots):
    """Whatever index chains GET /v1/model lists are drawn as lines; here a chain is set on the page's
    model (the shipped layout may list none) and the line's midpoint is checked on the canvas."""
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), synthetic_face)
    driver = open_browser()
    open_page(driver, server)
    assert upload(driver, path) == "photo"
    face = drawn_faces(driver)[0]
    names = driver.execute_script("return state.model.names")
    # right eye centre (1) -> left eye centre (0): a long chain segment between two points
    driver.execute_script("state.model.contours = [[1, 0]];"
                          "document.getElementById('show-points').checked = false; renderPhoto();")
    (a, b) = [face["keypoints"][names[i]] for i in (1, 0)]
    middle = {"keypoints": {names[0]: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2]}}
    driver.execute_script("state.model.names = [state.model.names[0]]")  # read one pixel, at the midpoint
    rgba = canvas_pixels_at_keypoints(driver, [middle])[0]
    assert np.abs(np.array(rgba[:3]) - CONTOUR_RGB).max() <= 40, rgba
    driver.save_screenshot(str(screenshots / "contours.png"))


def test_a_synthetic_face_and_a_bad_file(server, open_browser, synthetic_face, tmp_path, screenshots):
    path = tmp_path / "synthetic_face.png"
    cv2.imwrite(str(path), cv2.cvtColor(synthetic_face, cv2.COLOR_GRAY2BGR))
    api = httpx.post(f"{server.url}/v1/keypoints", content=path.read_bytes(), timeout=60).json()
    driver = open_browser()
    open_page(driver, server)
    assert upload(driver, path) == "photo"
    assert drawn_faces(driver) == api["faces"] and len(api["faces"]) == 1
    driver.save_screenshot(str(screenshots / "synthetic.png"))  # docs/serve.png is one of these
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"these are notes, not a photo")
    assert upload(driver, bad) == "error"
    message = driver.execute_script("return document.getElementById('message').textContent")
    assert message.startswith("422: not an image"), message
    assert drawn_faces(driver) == []
    driver.save_screenshot(str(screenshots / "error.png"))


@pytest.mark.parametrize("orientation", [6, 3, 8])
def test_a_jpeg_with_an_exif_turn_is_drawn_in_the_stored_pixels(server, open_browser, synthetic_face, tmp_path,
                                                                orientation, screenshots):
    """Browsers turn such a JPEG when they decode it; the server, like `kplab predict`, does not. The
    page must show the stored pixels, or the points land on the wrong part of the picture."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.jpg"
    Image.fromarray(synthetic_face).save(path, "JPEG", quality=95, exif=exif.tobytes())
    api = httpx.post(f"{server.url}/v1/keypoints", content=path.read_bytes(), timeout=60).json()
    assert len(api["faces"]) == 1
    driver = open_browser()
    open_page(driver, server)
    assert upload(driver, path) == "photo"
    assert driver.execute_script("return [state.photo.width, state.photo.height]") == [api["width"], api["height"]]
    found, expected = drawn_dot_centres(driver, drawn_faces(driver), 1.0)
    assert np.abs(found - expected).max() < 1.0
    # ... and the canvas shows the stored pixels: a grid of samples matches the file, not a turned copy.
    grid = [(x, y) for x in range(8, 352, 24) for y in range(8, 288, 24)]
    shown = np.array(driver.execute_script("""
        const c = document.getElementById('canvas'), s = parseFloat(c.dataset.scale), ctx = c.getContext('2d');
        return arguments[0].map(([x, y]) =>
            ctx.getImageData(Math.floor((x + 0.5) * s), Math.floor((y + 0.5) * s), 1, 1).data[1]);""", grid))
    stored = np.array([int(synthetic_face[y, x]) for x, y in grid])
    turned = np.array([int(synthetic_face[287 - y, 351 - x]) for x, y in grid])
    assert np.median(np.abs(shown - stored)) < 6 < np.median(np.abs(turned - stored)), (shown, stored)
    message = driver.execute_script("return document.getElementById('message').textContent")
    assert f"EXIF orientation {orientation}" in message
    driver.save_screenshot(str(screenshots / f"exif{orientation}.png"))


def test_the_page_one_euro_filter_is_the_python_one(server, open_browser):
    rng = np.random.default_rng(0)
    samples = np.cumsum(rng.normal(0, 3, (60, 6)), axis=0) + rng.normal(0, 1, (60, 6))  # drifting, noisy
    driver = open_browser()
    open_page(driver, server)
    for min_cutoff, beta in [(1.0, 0.05), (0.3, 0.5)]:
        page = driver.execute_script("return oneEuroSequence(arguments[0], 30, arguments[1], arguments[2])",
                                     samples.tolist(), min_cutoff, beta)
        np.testing.assert_allclose(page, smooth_sequence(samples, 30, min_cutoff, beta), rtol=0, atol=1e-9)
    assert not np.allclose(page, samples, atol=0.1)  # the filter did something


def write_y4m(path, frames: list[np.ndarray], fps: int) -> None:
    """An uncompressed YUV4MPEG2 4:2:0 video, the format Chromium's fake camera plays."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


@pytest.mark.real
def test_the_webcam_path_returns_keypoints_frame_after_frame(server, open_browser, shared_data, tmp_path, screenshots):
    import csv

    from selenium.webdriver.common.by import By

    folder = shared_data / "faces" / "photos"
    name = "Amelia_Vega_31.jpg"
    photo = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
    with open(folder / "keypoints.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["file"] == name)
    # A real face photo, 1.3x, moving a few pixels back and forth on a 640x480 frame, 10 fps.
    scale = 1.3
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    ph, pw = photo.shape[:2]
    frames, offsets = [], []
    for i in range(40):
        dx, dy = int(round(150 + 6 * np.sin(2 * np.pi * i / 40))), int(round(25 + 3 * np.cos(2 * np.pi * i / 40)))
        frame = np.full((480, 640, 3), 40, np.uint8)
        frame[dy:dy + ph, dx:dx + pw] = photo
        frames.append(frame)
        offsets.append((dx, dy))
    video = tmp_path / "face.y4m"
    write_y4m(video, frames, fps=10)

    driver = open_browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                          f"--use-file-for-fake-video-capture={video}", "--autoplay-policy=no-user-gesture-required")
    open_page(driver, server)
    driver.find_element(By.ID, "tab-webcam").click()
    driver.find_element(By.ID, "cam-toggle").click()
    wait(driver, "return +document.getElementById('stage').dataset.frames >= 8", timeout=90, what="8 webcam results")
    seen = []
    for _ in range(5):  # several later frames, each with the face and every keypoint
        faces = drawn_faces(driver)
        assert len(faces) == 1, faces
        seen.append(faces[0])
        time.sleep(0.15)
    frames_done = int(driver.execute_script("return document.getElementById('stage').dataset.frames"))
    fps = float(driver.execute_script("return document.getElementById('stat-fps').textContent"))
    names = driver.execute_script("return state.model.names")
    truth = np.array([[float(row[f"{n}_x"]), float(row[f"{n}_y"])] for n in names])  # photo pixels
    # Truth in video pixels: scaled about pixel edges, then shifted by the offsets the face moves within.
    centre = 1.0  # pixel_centre of the labels
    placed = (truth - centre + 0.5) * scale - 0.5 + centre
    lo, hi = placed + np.min(offsets, 0) - 6, placed + np.max(offsets, 0) + 6  # motion range + model error
    for face in seen:
        points = np.array([face["keypoints"][n] for n in names])
        inside = np.all((points >= lo) & (points <= hi), axis=1)
        assert inside.mean() >= 0.8, (points - placed).round(1).tolist()
    print(f"\nwebcam: {frames_done} frames with keypoints, {fps:.1f} fps in the page")
    assert fps > 0
    driver.save_screenshot(str(screenshots / "webcam.png"))
    driver.find_element(By.ID, "cam-toggle").click()
    assert_only_same_origin_requests(driver, server)


def test_the_tta_switch_starts_at_the_models_own_and_a_request_names_tta_only_when_it_differs(
        start_server, open_browser, synthetic_face, tmp_path):
    """A model validated with flip TTA (the best preset's) predicts with it unless told not to: the page's
    switch starts on, its uploads leave `tta` to the server, and switching it off asks for tta=false."""
    from kplab.checkpoint import read_meta
    from kplab.faces.inference.predict import resolve_model
    from kplab.faces.training.model import load_model, save_model

    shipped = resolve_model("default")
    model = tmp_path / "flip-tta-model"
    save_model(model, load_model(shipped), {"mean_shape": read_meta(shipped)["mean_shape"], "flip_tta": True})
    server = start_server(str(model), "--backend", "torch", "--starts", "1")
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), synthetic_face)

    def api(**params):
        return httpx.post(f"{server.url}/v1/keypoints", content=path.read_bytes(), params=params, timeout=60).json()

    def keypoint_requests():
        return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                     ".filter(u => u.includes('/v1/keypoints'))")

    with_tta, plain = api(tta="true")["faces"], api(tta="false")["faces"]
    assert with_tta != plain and api()["faces"] == with_tta
    driver = open_browser()
    open_page(driver, server)
    assert driver.execute_script("return document.getElementById('opt-tta').checked") is True
    assert upload(driver, path) == "photo" and drawn_faces(driver) == with_tta
    assert "tta=" not in keypoint_requests()[-1]
    driver.execute_script("document.getElementById('opt-tta').checked = false")
    assert upload(driver, path) == "photo" and drawn_faces(driver) == plain
    assert "tta=false" in keypoint_requests()[-1]
