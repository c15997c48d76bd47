// The kplab page: a photo (dropped, picked or pasted) or the webcam -> POST /v1/keypoints -> drawn.
// What is drawn is also kept on #stage as data attributes (data-faces: the faces as drawn, in the
// image's pixels, after smoothing on the webcam; data-frames: webcam results so far; data-state),
// so tests and scripts read exactly what the page shows.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = { box: "#3dd6c6", contour: "rgba(120, 200, 255, 0.9)", point: "#ff5c7a", ring: "#ffffff" };
const WEBCAM_MAX_SIDE = 640;   // frames are sent at most this large: plenty for faces, quick to encode
const TRACK_IOU = 0.3;         // a webcam face continues a track when its box overlaps this much

const state = {
  model: null,          // GET /v1/model
  mode: "photo",
  photo: null,          // {bitmap, blob, width, height}
  result: null,         // last response JSON
  drawn: [],            // faces as drawn: [{box, score, keypoints: {name: [x, y]}}]
  cam: { running: false, stream: null, tracks: [], frames: 0, times: [], grab: document.createElement("canvas") },
};

// ---- model ------------------------------------------------------------------------------------
async function loadModel() {
  const response = await fetch("/v1/model");
  state.model = await response.json();
  const m = state.model;
  $("opt-tta").checked = Boolean(m.flip_tta);  // the model's own default; a request says so only when it differs
  const val = m.metrics && m.metrics.val;
  const parts = [
    `<b>${escapeHtml(m.model)}</b>`,
    `${escapeHtml(m.layout)} · ${m.n_points} points`,
    m.n_params ? `${(m.n_params / 1e6).toFixed(2)} M params` : null,
    val && val.score ? `val score ${Math.round(val.score)}` : null,
    escapeHtml(m.backend),
  ].filter(Boolean);
  $("model-info").innerHTML = parts.map((p) => `<span>${p}</span>`).join("");
  $("drop-limits").textContent =
    `JPEG, PNG, BMP, TIFF, WebP · up to ${(m.limits.max_bytes / 1e6).toFixed(0)} MB and ` +
    `${(m.limits.max_pixels / 1e6).toFixed(0)} megapixels`;
  $("api-url").textContent = location.origin;
  // Layouts without contour lines (the 15-point one) have nothing to toggle.
  $("show-contours").parentElement.classList.toggle("hidden", m.contours.length === 0);
}

// ---- the API ----------------------------------------------------------------------------------
async function postImage(blob, params) {
  const query = new URLSearchParams(params).toString();
  const started = performance.now();
  const response = await fetch("/v1/keypoints" + (query ? "?" + query : ""), {
    method: "POST", body: blob, headers: { "content-type": blob.type || "application/octet-stream" },
  });
  const rtt = performance.now() - started;
  let body;
  try { body = await response.json(); } catch (e) { body = { error: `HTTP ${response.status}` }; }
  if (!response.ok) {
    const error = new Error(`${response.status}: ${body.error || "request failed"}`);
    error.body = body;
    throw error;
  }
  return { result: body, rtt };
}

function photoParams() {
  const params = {};
  if ($("opt-tta").checked !== Boolean(state.model && state.model.flip_tta)) params.tta = String($("opt-tta").checked);
  if (!$("opt-detect").checked) params.detect = "false";
  const minScore = parseFloat($("opt-min-score").value);
  if (minScore > 0) params.min_score = String(minScore);
  return params;
}

// ---- photo mode -------------------------------------------------------------------------------
async function usePhoto(blob) {
  if (!blob) return;
  if (state.cam.running) stopWebcam();
  setMessage("");
  setBusy(true);
  try {
    const { bitmap, orientation } = await storedBitmap(blob).catch(() => ({ bitmap: null, orientation: 1 }));
    state.photo = bitmap ? { bitmap, blob, width: bitmap.width, height: bitmap.height } : { blob };
    await runPhoto();
    if (orientation !== 1) {
      setMessage(`This JPEG asks to be shown turned (EXIF orientation ${orientation}). kplab reads the pixels ` +
                 "as stored, as `kplab predict` does, so the page shows them that way too.", "info");
    }
  } finally {
    setBusy(false);
  }
}

async function runPhoto() {
  if (!state.photo) return;
  $("stage").dataset.state = "busy";
  setBusy(true);
  try {
    const { result, rtt } = await postImage(state.photo.blob, photoParams());
    if (!state.photo.bitmap) setMessage("The browser cannot show this format, but the server read it.", "info");
    state.result = result;
    state.drawn = result.faces;
    showResult(result, rtt);
    $("stage").dataset.state = "photo";
    $("again").disabled = $("clear").disabled = false;
    if (result.faces.length === 0) setMessage("No face found. Faces should be upright and at least 48 px wide.", "info");
    renderPhoto();
  } catch (e) {
    setMessage(e.message, "error");
    state.result = null;
    state.drawn = [];
    if (state.photo && !state.photo.bitmap) state.photo = null;  // nothing to show: the drop zone returns
    $("json").innerHTML = highlightJson(formatJson(e.body || { error: e.message }));
    setStats({});
    $("stage").dataset.state = "error";
    renderPhoto();
  } finally {
    setBusy(false);
  }
}

function clearPhoto() {
  state.photo = state.result = null;
  state.drawn = [];
  $("stage").dataset.state = "empty";
  $("json").innerHTML = '<span class="muted">POST /v1/keypoints answers here.</span>';
  $("again").disabled = $("clear").disabled = $("copy").disabled = true;
  setStats({});
  setMessage("");
  renderPhoto();
}

// Browsers turn JPEGs by their EXIF orientation when decoding; the server (like `kplab predict`)
// reads the pixels as stored. Turning the browser's bitmap back gives the stored pixels, the frame
// the keypoints are in.
const UNDO_ORIENTATION = {  // canvas transform (a, b, c, d, e, f) from shown to stored pixels
  2: (W, H) => [-1, 0, 0, 1, W, 0], 3: (W, H) => [-1, 0, 0, -1, W, H], 4: (W, H) => [1, 0, 0, -1, 0, H],
  5: (W, H) => [0, 1, 1, 0, 0, 0], 6: (W, H) => [0, -1, 1, 0, 0, H], 7: (W, H) => [0, -1, -1, 0, W, H],
  8: (W, H) => [0, 1, -1, 0, W, 0],
};

async function storedBitmap(blob) {
  const shown = await createImageBitmap(blob);
  const orientation = exifOrientation(new DataView(await blob.slice(0, 1 << 17).arrayBuffer()));
  if (!UNDO_ORIENTATION[orientation]) return { bitmap: shown, orientation: 1 };
  const swap = orientation >= 5;
  const W = swap ? shown.height : shown.width, H = swap ? shown.width : shown.height;
  const canvas = document.createElement("canvas");
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(...UNDO_ORIENTATION[orientation](W, H));
  ctx.drawImage(shown, 0, 0);
  return { bitmap: await createImageBitmap(canvas), orientation };
}

// The EXIF orientation tag (1-8) of a JPEG, or 1 when there is none.
function exifOrientation(view) {
  if (view.byteLength < 4 || view.getUint16(0) !== 0xffd8) return 1;
  let offset = 2;
  while (offset + 4 <= view.byteLength) {
    const marker = view.getUint16(offset), length = view.getUint16(offset + 2);
    if (marker === 0xffe1 && offset + 10 <= view.byteLength && view.getUint32(offset + 4) === 0x45786966) {  // "Exif"
      const tiff = offset + 10;
      const little = view.getUint16(tiff) === 0x4949;
      const ifd = tiff + view.getUint32(tiff + 4, little);
      if (ifd + 2 > view.byteLength) return 1;
      const count = view.getUint16(ifd, little);
      for (let i = 0; i < count; i++) {
        const entry = ifd + 2 + 12 * i;
        if (entry + 10 > view.byteLength) return 1;
        if (view.getUint16(entry, little) === 0x0112) return view.getUint16(entry + 8, little);
      }
      return 1;
    }
    if ((marker & 0xff00) !== 0xff00 || marker === 0xffda) return 1;  // no more headers before the scan
    offset += 2 + length;
  }
  return 1;
}

// Fit the photo into the stage; the canvas has device pixels, so lines stay crisp at any zoom.
function renderPhoto() {
  const canvas = $("canvas");
  const stage = $("stage");
  const photo = state.photo;
  const show = state.mode === "photo" && photo && photo.bitmap;
  canvas.classList.toggle("visible", Boolean(show));
  $("drop").classList.toggle("compact", Boolean(photo));
  publish();
  if (!show) return;
  const maxW = stage.clientWidth - 24, maxH = stage.clientHeight - 24;
  const fit = Math.min(maxW / photo.width, maxH / photo.height);
  const cssW = Math.max(1, Math.round(photo.width * fit)), cssH = Math.max(1, Math.round(photo.height * fit));
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = cssW + "px";
  canvas.style.height = cssH + "px";
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(photo.bitmap, 0, 0, canvas.width, canvas.height);
  const scale = canvas.width / photo.width;
  canvas.dataset.scale = String(scale);
  drawFaces(ctx, state.drawn, scale, dpr);
}

// ---- drawing (shared by photo and webcam) -----------------------------------------------------
// Keypoints use the training labels' pixel convention: the centre of pixel column j is
// x = j + pixel_centre; on a canvas that centre is at j + 0.5.
function toCanvas(x, y, scale) {
  const shift = 0.5 - state.model.pixel_centre;
  return [(x + shift) * scale, (y + shift) * scale];
}

function drawFaces(ctx, faces, scale, dpr, mirrored = false) {
  const names = state.model.names;
  const show = (id) => $(id).checked;
  for (const face of faces) {
    const [x0, y0] = toCanvas(face.box[0], face.box[1], scale);
    const [x1, y1] = toCanvas(face.box[2], face.box[3], scale);
    const size = Math.max(x1 - x0, y1 - y0) / dpr;
    const points = names.map((n) => face.keypoints[n]).map((p) => (p ? toCanvas(p[0], p[1], scale) : null));
    if (show("show-boxes")) {
      ctx.strokeStyle = COLORS.box;
      ctx.lineWidth = 2 * dpr;
      ctx.setLineDash([8 * dpr, 5 * dpr]);
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.setLineDash([]);
      if (face.score !== null && face.score !== undefined) {
        const label = `face ${face.score.toFixed(1)}`;
        ctx.font = `${600} ${12 * dpr}px system-ui, sans-serif`;
        const w = ctx.measureText(label).width + 10 * dpr;
        ctx.save();
        if (mirrored) { ctx.translate(x0 + w, 0); ctx.scale(-1, 1); ctx.translate(-x0, 0); }
        ctx.fillStyle = COLORS.box;
        ctx.fillRect(x0, y0 - 18 * dpr, w, 18 * dpr);
        ctx.fillStyle = "#07110f";
        ctx.fillText(label, x0 + 5 * dpr, y0 - 5 * dpr);
        ctx.restore();
      }
    }
    if (show("show-contours")) {
      ctx.strokeStyle = COLORS.contour;
      ctx.lineWidth = Math.max(1.2, Math.min(2.5, size / 90)) * dpr;
      ctx.lineJoin = ctx.lineCap = "round";
      for (const chain of state.model.contours) {
        ctx.beginPath();
        chain.forEach((index, k) => {
          const p = points[index];
          if (!p) return;
          if (k === 0) ctx.moveTo(p[0], p[1]); else ctx.lineTo(p[0], p[1]);
        });
        ctx.stroke();
      }
    }
    if (show("show-points")) {
      const r = Math.max(2.2, Math.min(4.5, size / 45)) * dpr;
      // All dark rings first, then all dots: no ring covers a neighbouring dot.
      for (const [radius, color] of [[r + 1.2 * dpr, "rgba(10, 12, 16, 0.55)"], [r, COLORS.point]]) {
        ctx.fillStyle = color;
        for (const p of points) {
          if (!p) continue;
          ctx.beginPath();
          ctx.arc(p[0], p[1], radius, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    if (show("show-labels") && !mirrored) {
      ctx.font = `${11 * dpr}px system-ui, sans-serif`;
      ctx.fillStyle = "#e8eef5";
      ctx.strokeStyle = "rgba(10, 12, 16, 0.8)";
      ctx.lineWidth = 3 * dpr;
      names.forEach((name, i) => {
        const p = points[i];
        if (!p) return;
        ctx.strokeText(name, p[0] + 6 * dpr, p[1] - 4 * dpr);
        ctx.fillText(name, p[0] + 6 * dpr, p[1] - 4 * dpr);
      });
    }
  }
}

// The nearest keypoint under the mouse, named in a tooltip (handy for 68-point layouts).
function onCanvasHover(event) {
  const tip = $("tooltip");
  const canvas = $("canvas");
  if (!state.drawn.length || !state.model) { tip.classList.remove("visible"); return; }
  const rect = canvas.getBoundingClientRect();
  const dpr = canvas.width / rect.width;
  const mx = (event.clientX - rect.left) * dpr, my = (event.clientY - rect.top) * dpr;
  const scale = parseFloat(canvas.dataset.scale);
  let best = null;
  for (const face of state.drawn) {
    for (const name of state.model.names) {
      const p = face.keypoints[name];
      if (!p) continue;
      const [cx, cy] = toCanvas(p[0], p[1], scale);
      const d = Math.hypot(cx - mx, cy - my) / dpr;
      if (d < 14 && (!best || d < best.d)) best = { d, name, p };
    }
  }
  if (!best) { tip.classList.remove("visible"); return; }
  tip.textContent = `${best.name}  (${best.p[0].toFixed(1)}, ${best.p[1].toFixed(1)})`;
  const stageRect = $("stage").getBoundingClientRect();
  tip.style.left = `${event.clientX - stageRect.left + 14}px`;
  tip.style.top = `${event.clientY - stageRect.top + 14}px`;
  tip.classList.add("visible");
}

// ---- webcam mode ------------------------------------------------------------------------------
async function startWebcam() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setMessage("This browser gives no webcam here (a page needs https or localhost for it).", "error");
    return;
  }
  try {
    state.cam.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
  } catch (e) {
    setMessage(`Webcam unavailable: ${e.message || e.name}`, "error");
    return;
  }
  const video = $("video");
  video.srcObject = state.cam.stream;
  await video.play();
  renderWebcam();
  Object.assign(state.cam, { running: true, tracks: [], frames: 0, times: [] });
  $("stage").dataset.state = "webcam";
  $("cam-toggle").textContent = "Stop webcam";
  $("cam-toggle").classList.replace("primary", "danger");
  setMessage("");
  webcamLoop();
}

function stopWebcam() {
  state.cam.running = false;
  if (state.cam.stream) state.cam.stream.getTracks().forEach((t) => t.stop());
  state.cam.stream = null;
  $("video").srcObject = null;
  $("cam-toggle").textContent = "Start webcam";
  $("cam-toggle").classList.replace("danger", "primary");
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  state.drawn = [];
  publish();
}

// One request in flight at a time: the next frame is grabbed when the last answer is drawn, so the
// page never queues more work than the server keeps up with.
async function webcamLoop() {
  const video = $("video");
  const grab = state.cam.grab;
  while (state.cam.running) {
    if (!video.videoWidth) { await sleep(50); continue; }
    const shrink = Math.min(1, WEBCAM_MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    grab.width = Math.round(video.videoWidth * shrink);
    grab.height = Math.round(video.videoHeight * shrink);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const t = performance.now() / 1000;
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
    try {
      const { result, rtt } = await postImage(blob, {});
      if (!state.cam.running) break;
      state.cam.frames += 1;
      state.cam.times.push(performance.now() / 1000);
      if (state.cam.times.length > 30) state.cam.times.shift();
      state.result = result;
      state.drawn = smoothFaces(result.faces, t, 1 / shrink);
      showResult(result, rtt);
      renderWebcam();
    } catch (e) {
      setMessage(e.message, "error");
      await sleep(500);
    }
  }
}

// Faces follow their track (box overlap with the last frame); each track has its own One-Euro
// filter over [box, keypoints]. Coordinates go from the sent frame's pixels to the video's.
function smoothFaces(faces, t, toVideo) {
  const names = state.model.names;
  const minCutoff = parseFloat($("min-cutoff").value), beta = parseFloat($("beta").value);
  const previous = state.cam.tracks;
  const tracks = [];
  const out = [];
  for (const face of faces) {
    const box = face.box.map((v) => v * toVideo);
    const flat = [...box, ...names.flatMap((n) => face.keypoints[n].map((v) => v * toVideo))];
    let best = null, bestIou = TRACK_IOU;
    for (const track of previous) {
      const overlap = iou(track.box, box);
      if (!tracks.includes(track) && overlap > bestIou) { best = track; bestIou = overlap; }
    }
    const track = best || { filter: new OneEuroFilter(minCutoff, beta) };
    track.filter.minCutoff = minCutoff;
    track.filter.beta = beta;
    const smooth = track.filter.filter(flat, t);
    track.box = smooth.slice(0, 4);
    tracks.push(track);
    const keypoints = {};
    names.forEach((n, i) => { keypoints[n] = [smooth[4 + 2 * i], smooth[5 + 2 * i]]; });
    out.push({ box: track.box, score: face.score, keypoints });
  }
  state.cam.tracks = tracks;
  return out;
}

// The video fits the stage as a photo does; the overlay canvas lies exactly on it.
function renderWebcam() {
  const video = $("video");
  const overlay = $("overlay");
  const stage = $("stage");
  const dpr = window.devicePixelRatio || 1;
  if (!video.videoWidth) return;
  const fit = Math.min((stage.clientWidth - 24) / video.videoWidth, (stage.clientHeight - 24) / video.videoHeight);
  const cssW = Math.round(video.videoWidth * fit), cssH = Math.round(video.videoHeight * fit);
  for (const element of [video, overlay]) {
    element.style.width = cssW + "px";
    element.style.height = cssH + "px";
  }
  overlay.width = Math.round(cssW * dpr);
  overlay.height = Math.round(cssH * dpr);
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const scale = overlay.width / video.videoWidth;
  overlay.dataset.scale = String(scale);
  drawFaces(ctx, state.drawn, scale, dpr, $("mirror").checked);
  const times = state.cam.times;
  const fps = times.length > 1 ? (times.length - 1) / (times[times.length - 1] - times[0]) : 0;
  $("stat-fps").textContent = fps ? fps.toFixed(1) : "–";
  publish();
}

// ---- the side panel ---------------------------------------------------------------------------
function showResult(result, rtt) {
  $("json").innerHTML = highlightJson(formatJson(result));
  $("copy").disabled = false;
  setStats({ faces: result.faces.length, ms: result.ms, rtt });
}

function setStats({ faces, ms, rtt }) {
  $("stat-faces").textContent = faces === undefined ? "–" : String(faces);
  $("stat-ms").textContent = ms === undefined ? "–" : ms.toFixed(0);
  $("stat-rtt").textContent = rtt === undefined ? "–" : rtt.toFixed(0);
  if (state.mode === "photo") $("stat-fps").textContent = "–";
}

// Pretty JSON with each [x, y] pair (and box) kept on one line.
function formatJson(value) {
  return JSON.stringify(value, null, 2).replace(/\[\s+([-0-9.e+,\s]+?)\s+\]/g,
    (_, inner) => "[" + inner.split(/,\s*/).join(", ") + "]");
}

function highlightJson(text) {
  return escapeHtml(text).replace(
    /(&quot;(?:[^&]|&(?!quot;))*?&quot;)(\s*:)?|\b(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\b|\b(true|false|null)\b/g,
    (match, str, colon, num, lit) => {
      if (str) return colon ? `<span class="k">${str}</span>${colon}` : `<span class="s">${str}</span>`;
      if (num) return `<span class="n">${num}</span>`;
      return `<span class="l">${lit}</span>`;
    });
}

function setMessage(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.className = "message" + (text ? ` visible ${kind}` : "");
}

function setBusy(on) { $("busy").classList.toggle("visible", on); }

// What the page drew, for tests and scripts (see the top of this file).
function publish() {
  const stage = $("stage");
  stage.dataset.faces = JSON.stringify(state.drawn);
  stage.dataset.frames = String(state.cam.frames);
  stage.dataset.mode = state.mode;
}

// ---- wiring -----------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  $("tab-photo").classList.toggle("active", mode === "photo");
  $("tab-webcam").classList.toggle("active", mode === "webcam");
  $("tab-photo").setAttribute("aria-selected", String(mode === "photo"));
  $("tab-webcam").setAttribute("aria-selected", String(mode === "webcam"));
  $("photo-controls").classList.toggle("hidden", mode !== "photo");
  $("webcam-controls").classList.toggle("hidden", mode !== "webcam");
  $("drop").classList.toggle("hidden", mode !== "photo");
  $("camera").classList.toggle("visible", mode === "webcam");
  if (mode === "photo") {
    if (state.cam.running) stopWebcam();
    state.drawn = state.result && state.photo ? state.result.faces : [];
  } else {
    state.drawn = [];
  }
  setStats({});
  renderPhoto();
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function wire() {
  const stage = $("stage");
  $("file").addEventListener("change", (e) => { usePhoto(e.target.files[0]); e.target.value = ""; });
  stage.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("dragging"); });
  stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
  stage.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("dragging");
    if (state.mode !== "photo") setMode("photo");
    usePhoto(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const item = [...e.clipboardData.items].find((i) => i.kind === "file");
    if (item) { if (state.mode !== "photo") setMode("photo"); usePhoto(item.getAsFile()); }
  });
  $("canvas").addEventListener("mousemove", onCanvasHover);
  $("canvas").addEventListener("mouseleave", () => $("tooltip").classList.remove("visible"));
  $("tab-photo").addEventListener("click", () => setMode("photo"));
  $("tab-webcam").addEventListener("click", () => setMode("webcam"));
  $("again").addEventListener("click", runPhoto);
  $("clear").addEventListener("click", clearPhoto);
  for (const id of ["opt-tta", "opt-detect", "opt-min-score"]) $(id).addEventListener("change", runPhoto);
  for (const id of ["show-boxes", "show-contours", "show-points", "show-labels"]) {
    $(id).addEventListener("change", () => (state.mode === "photo" ? renderPhoto() : renderWebcam()));
  }
  $("cam-toggle").addEventListener("click", () => (state.cam.running ? stopWebcam() : startWebcam()));
  $("min-cutoff").addEventListener("input", (e) => { $("min-cutoff-value").textContent = (+e.target.value).toFixed(2); });
  $("beta").addEventListener("input", (e) => { $("beta-value").textContent = (+e.target.value).toFixed(3); });
  $("mirror").addEventListener("change", (e) => $("camera").classList.toggle("mirror", e.target.checked));
  $("copy").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(formatJson(state.result)));
  window.addEventListener("resize", () => (state.mode === "photo" ? renderPhoto() : renderWebcam()));
}

wire();
loadModel().then(() => { $("stage").dataset.ready = "true"; }).catch((e) => setMessage(`Cannot reach the model: ${e.message}`, "error"));
