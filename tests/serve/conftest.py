"""A real `kplab serve` process on a free loopback port, and headless Chromium from the system."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

KPLAB = Path(sys.executable).with_name("kplab")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,860", "--force-device-scale-factor=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`kplab serve ARGS` on 127.0.0.1:PORT until stop(); `url`, `pid`, `log()` (its stderr so far)."""

    def __init__(self, args: list[str], log_path: Path, timeout: float = 180.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen([str(KPLAB), "serve", *args, "--port", str(self.port)],
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"kplab serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"kplab serve did not answer within {timeout} s:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict:
        return httpx.get(f"{self.url}/healthz", timeout=10).json()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory):
    """start_server(*args) -> a running Server; all are stopped at the end of the session."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(list(args), tmp_path_factory.mktemp("serve") / "server.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def synthetic_face() -> np.ndarray:
    """A grey picture (288, 352) of one procedural face (kplab.faces.training.synthetic, shipped with kplab, so
    no shared data is needed) that the face detector finds: the first such face of a fixed sequence,
    upscaled 3x onto a plain background."""
    from kplab.faces.inference.detect import HaarFaceDetector
    from kplab.faces.training.synthetic import synthetic_faces

    detector = HaarFaceDetector()
    for image in synthetic_faces(20, seed=1).images:
        canvas = np.full((288, 352), int(np.median(image[:, 0])), np.uint8)
        canvas[:, 32:320] = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
        if len(detector.detect(canvas)) == 1:
            return canvas
    pytest.fail("no synthetic face in the fixed sequence is detectable")


@pytest.fixture(scope="session")
def server(start_server) -> Server:
    """The shipped model on ONNX Runtime with default limits and batching."""
    return start_server("default", "--backend", "onnx")


def chromium_available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@pytest.fixture(scope="session")
def browser_binaries():
    """Chromium and chromedriver from the system packages (`make test` installs them). Outside CI a
    machine without them skips the browser tests; under CI=true they must be there."""
    if not chromium_available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} missing under CI (make test installs chromium and "
                        "chromium-driver with apt-get)")
        pytest.skip("chromium / chromium-driver not installed (apt-get install chromium chromium-driver)")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def open_browser(browser_binaries, tmp_path):
    """open_browser(*extra_flags) -> a fresh headless Chromium driven by Selenium through the system
    chromedriver, with its own profile; quit at the end of the test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def open_(*extra_flags: str):
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        profile = tmp_path / f"chromium-profile-{len(drivers)}"
        for flag in [*CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
        drivers.append(webdriver.Chrome(service=service, options=options))
        return drivers[-1]

    yield open_
    for driver in drivers:
        driver.quit()


@pytest.fixture
def screenshots(request, tmp_path):
    """Folder for a test's screenshots: KPLAB_SCREENSHOTS/<test name> if set, else the test's tmp_path."""
    base = os.environ.get("KPLAB_SCREENSHOTS")
    folder = Path(base) / request.node.name if base else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
