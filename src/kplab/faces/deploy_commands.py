"""`kplab predict`, `kplab export` and `kplab bench`: option parsing, output files and messages."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import click

from kplab.faces.inference.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF  # NumPy only: cheap at CLI start-up

SMOOTH_DEFAULTS = {"min_cutoff": DEFAULT_MIN_CUTOFF, "beta": DEFAULT_BETA}


class _Records:
    """Face records as JSON lines or CSV rows, to a file or to stdout."""

    def __init__(self, fmt: str, path: Path | None, layout):
        self.fmt, self.names = fmt, layout.names
        self.stream = path.open("w", newline="") if path else sys.stdout
        self.count = 0
        if fmt == "csv":
            self.csv = csv.writer(self.stream)
            self.csv.writerow(["file", "frame", "face", "x0", "y0", "x1", "y1", "score", "quality",
                               *layout.csv_columns()])

    def write(self, result) -> None:
        for i, face in enumerate(result.faces):
            d = face.to_dict()
            if self.fmt == "json":
                record = {"file": result.source, "frame": result.frame, **d}
                self.stream.write(json.dumps(record) + "\n")
            else:
                self.csv.writerow([result.source, "" if result.frame is None else result.frame, i, *d["box"],
                                   "" if d["score"] is None else d["score"],
                                   "" if d["quality"] is None else d["quality"],
                                   *[v for n in self.names for v in d["keypoints"][n]]])
            self.count += 1

    def close(self) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()
        else:
            self.stream.flush()


def _annotated_path(out: Path, source: Path, used: set[str], suffix: str | None = None) -> Path:
    """out/annotated/NAME, keeping the file name and adding the parent folder's name (then a number)
    only where two inputs share a name; the extension changes to `suffix` when given."""
    name = source.name if suffix is None else source.stem + suffix
    candidates = [name, f"{source.parent.name}_{name}"] + [f"{Path(name).stem}_{k}{Path(name).suffix}"
                                                         for k in range(2, 10_000)]
    chosen = next(c for c in candidates if c not in used)
    used.add(chosen)
    return out / "annotated" / chosen


def _runs(items):
    """Consecutive items of the same kind as (kind, [paths]), so a folder of images is one batched run."""
    runs: list[tuple[str, list[Path]]] = []
    for kind, path in items:
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(path)
        else:
            runs.append((kind, [path]))
    return runs


@click.command(context_settings={"show_default": True})
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="folder for predictions.jsonl/.csv and annotated copies (default: records to stdout)")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default=None,
              help="model runtime  [default: onnx for a .onnx MODEL, else torch]")
@click.option("--tta/--no-tta", default=None, show_default=False,
              help="average with the mirrored face's prediction  [default: as the model records; on for "
                   "models trained with val_tta, as the best preset's]")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json")
@click.option("--no-detect", is_flag=True, help="inputs are ready 96x96 face crops: no detection or framing")
@click.option("--smooth", is_flag=True, help="One-Euro filter per keypoint across video frames")
@click.option("--min-cutoff", type=float, default=SMOOTH_DEFAULTS["min_cutoff"],
              help="--smooth: cutoff at rest in Hz (lower = less jitter)")
@click.option("--beta", type=float, default=SMOOTH_DEFAULTS["beta"],
              help="--smooth: cutoff growth per px/s of speed (higher = less lag)")
@click.option("--passes", type=int, default=3,
              help="framing passes (2 and more re-frame on the previous pass's predicted eyes and mouth)")
@click.option("--min-score", type=float, default=0.0,
              help="drop detections the face detector scores below this (half of real faces score over 6.7, "
                   "1.7 % under 1.5)")
@click.option("--starts", type=int, default=9,
              help="first-pass framings per face (1-9: the detector box, then shifted by 20 %); the refined "
                   "fits that agree are averaged, and their agreement is the face's quality")
@click.option("--min-quality", type=float, default=0.0,
              help="drop faces whose fit quality is below this (0-1; 1 = every framing agreed, 0 = the median "
                   "framing ended half an eye distance away from the others)")
@click.option("--detect-step", type=click.FloatRange(1.01, 2.0), default=1.1,
              help="the face detector's size step (1.2: about half the detection time, faces between steps "
                   "found less surely)")
@click.option("--layout", default=None,
              help="answer in this layout, derived from the model's (kaggle15 from a 68-point model)  "
                   "[default: the model's]")
@click.option("--batch-size", type=int, default=256)
@click.option("--threads", type=int, default=None, help="CPU threads for the model (default: the runtime's)")
def predict(model, inputs, out, backend, tta, fmt, no_detect, smooth, min_cutoff, beta, passes, min_score,
            starts, min_quality, detect_step, layout, batch_size, threads):
    """Facial keypoints for photos, folders of photos and videos (INPUT...), in original pixels.

    MODEL is a model directory, an exported .onnx file or a shipped model: `default` (15 points) or
    `faces68` (68 iBUG points).
    """
    import cv2
    import torch

    from kplab.errors import KplabError
    from kplab.faces.inference.inputs import expand_inputs
    from kplab.faces.inference.predict import Predictor, draw_faces
    from kplab.faces.inference.smoothing import OneEuroFilter
    from kplab.faces.inference.video import VideoWriter, predict_video, video_info
    from kplab.progress import bar, say

    if threads:
        torch.set_num_threads(threads)
    items, problems = expand_inputs(inputs)
    for problem in problems:
        say(f"skipped: {problem}")
    predictor = Predictor(model, backend=backend, tta=tta, detect=not no_detect, passes=passes,
                          batch_size=batch_size, threads=threads, min_score=min_score, layout=layout,
                          starts=starts, min_quality=min_quality, detect_step=detect_step)
    out_dir = Path(out) if out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    records = _Records(fmt, out_dir / f"predictions.{'jsonl' if fmt == 'json' else 'csv'}" if out_dir else None,
                       predictor.output_layout)
    make_filter = (lambda: OneEuroFilter(min_cutoff, beta)) if smooth else None
    used: set[str] = set()
    read = skipped = no_face = 0
    try:
        for kind, paths in _runs(items):
            if kind == "image":
                for result in bar(predictor.predict_files(paths), desc="photos", total=len(paths)):
                    if result.error:
                        skipped += 1
                        say(f"skipped: {result.error}")
                        continue
                    read += 1
                    if not result.faces:
                        no_face += 1
                        say(f"{result.source}: no face found")
                    records.write(result)
                    if out_dir:
                        source = Path(result.source)
                        keep = cv2.haveImageWriter(source.name)
                        target = _annotated_path(out_dir, source, used, None if keep else ".png")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        cv2.imwrite(str(target), draw_faces(result.image, result.faces, predictor.output_layout))
                continue
            for path in paths:
                try:
                    info = video_info(path)
                    writer = (VideoWriter(_annotated_path(out_dir, path, used, ".mp4"), info.fps, info.width,
                                          info.height) if out_dir else None)
                except KplabError as e:
                    skipped += 1
                    say(f"skipped: {e}")
                    continue
                frames = empty = 0
                try:
                    for result in bar(predict_video(predictor, path, make_filter), desc=path.name,
                                      total=info.frames or None):
                        frames += 1
                        empty += not result.faces
                        records.write(result)
                        if writer:
                            writer.write(draw_faces(result.image, result.faces, predictor.output_layout))
                except KplabError as e:
                    say(f"{path}: stopped after {frames} frames: {e}")
                finally:
                    if writer:
                        writer.close()
                read += frames > 0
                skipped += frames == 0
                say(f"{path}: {frames} frames, no face in {empty}" + (f"; annotated video {writer.path}" if writer else ""))
    finally:
        records.close()
    say(f"{records.count} faces from {read} inputs; {no_face} without a face; {skipped + len(problems)} skipped"
        + (f"; results in {out_dir}" if out_dir else ""))
    if read == 0:
        raise KplabError("no input could be read (see the messages above)")


@click.command(context_settings={"show_default": True})
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="output file (default: MODEL_DIR/model.onnx, which `predict --backend onnx` picks up, or "
                   "MODEL_DIR/model-int8.onnx; for a shipped model, NAME[-int8].onnx here)")
@click.option("--exporter", type=click.Choice(["dynamo", "torchscript"]), default="dynamo",
              help="torch's current exporter, or the older (deprecated, faster) tracing one")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: 18)")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none",
              help="int8: static int8 quantisation (faster on CPUs with VNNI; needs --calibrate)")
@click.option("--calibrate", "calibrate_data", default=None,
              help="faces for int8 calibration: an I2DL folder, Kaggle CSV, .npz or 'synthetic'")
@click.option("--calibrate-count", type=int, default=256, help="how many calibration faces (random, seed 0)")
def export(model, fmt, out, exporter, opset, quantize, calibrate_data, calibrate_count):
    """Export MODEL to one self-contained ONNX file (dynamic batch; layout and normalisation in metadata)."""
    import numpy as np
    import torch

    from kplab.faces.inference.export import OPSET, OnnxModule, export_model_dir
    from kplab.faces.training.model import load_model
    from kplab.faces.inference.predict import resolve_model
    from kplab.progress import say

    model_dir = resolve_model(model)
    calibration = None
    if quantize == "int8":
        from kplab.faces.training.data import read_faces

        if calibrate_data is None:
            raise click.UsageError("--quantize int8 needs --calibrate DATA (faces like the ones you will predict)")
        faces = read_faces(calibrate_data, "train" if Path(calibrate_data).suffix == ".npz" else None)
        pick = np.random.default_rng(0).permutation(len(faces))[:calibrate_count]
        calibration = faces.images[pick, None].astype(np.float32) / 255  # (N, 1, 96, 96)
    path = export_model_dir(model_dir, Path(out) if out else default_export_path(model, model_dir, quantize),
                            exporter, opset or OPSET, calibration)
    session = OnnxModule(path)
    images = torch.rand(5, 1, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = load_model(model_dir)(images).numpy()
    diff = float(np.abs(session.run(images.numpy()) - expected).max())
    say(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, opset {session.metadata['opset']}, "
        f"{exporter} exporter{', int8' if calibration is not None else ''}); "
        f"ONNX Runtime vs torch on 5 random images: max |diff| {diff:.2e}")
    click.echo(str(path))


def default_export_path(model: str, model_dir: Path, quantize: str) -> Path:
    """Float exports go beside the weights as model.onnx, where `--backend onnx` finds them; an int8
    file gets its own name so it is only used when asked for. The shipped models already carry their
    model.onnx, and nothing writes into the installed package: their exports go to the current folder."""
    from kplab.faces.inference.predict import shipped_model

    suffix = "-int8" if quantize == "int8" else ""
    name = shipped_model(model)
    if name is not None:
        return Path(f"{name}{suffix}.onnx")
    return model_dir / f"model{suffix}.onnx"


@click.command(context_settings={"show_default": True})
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of the table")
@click.option("--threads", type=int, default=2, help="threads for torch and ONNX Runtime")
@click.option("--photos", type=click.Path(exists=True), default=None,
              help="a folder of photos for the end-to-end (detect + crop + predict) speed")
@click.option("--repeats", type=int, default=200, help="timed batch-1 calls (batch-256 uses a twentieth)")
@click.option("--exporter", type=click.Choice(["dynamo", "torchscript"]), default="dynamo")
def bench(model, as_json, threads, photos, repeats, exporter):
    """Size, MFLOPs and speed of MODEL on torch eager and ONNX Runtime (batch 1 and batch 256).

    MODEL is a model directory or `default` (torch and its ONNX export), or an exported .onnx file
    (ONNX Runtime only, e.g. an int8 export)."""
    from kplab.errors import DataError
    from kplab.faces.training.images import read_image
    from kplab.faces.inference.inputs import expand_inputs
    from kplab.faces.inference.predict import resolve_model
    from kplab.faces.inference.speed import format_report, measure
    from kplab.progress import say

    images = []
    if photos:
        items, problems = expand_inputs([photos])
        for kind, path in items:
            try:
                images.append(read_image(path)) if kind == "image" else None
            except DataError as e:
                say(f"skipped: {e}")
    say(f"benchmarking with {threads} threads ...")
    result = measure(resolve_model(model), threads=threads, photos=images or None, repeats_b1=repeats,
                     repeats_b256=max(3, repeats // 20), exporter=exporter)
    click.echo(json.dumps(result) if as_json else format_report(result))
