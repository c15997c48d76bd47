"""What `kplab bench` measures: model size, compute per face, and speed on torch and ONNX Runtime.

Conventions (printed with the table):
- mflops = 2 x the multiply-accumulates (MACs) of every Conv2d and Linear layer for one 96x96 face
  (one MAC = one multiply + one add), counted with forward hooks on a real forward pass; batch norm,
  activations, softmax and interpolation are elementwise and left out.
- latency (ms per face) = median over repeated single-face calls; throughput (faces/s) = 256 / median
  time of a batch of 256. Warm-up calls run first and are not counted. Threads are fixed and reported.
- end to end (photos/s): detect + frame (Predictor's defaults) + crop + predict on decoded photos, ONNX backend,
  median over repeats of the whole folder.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from kplab.faces.training.layout import IMAGE_SIZE

INT8_FILE = "model-int8.onnx"  # `kplab export DIR --quantize int8` writes it beside the weights


def count_macs(model: nn.Module) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one face (hooks on a batch-1 forward).

    Conv2d: out_elements x (in_channels / groups) x kernel_h x kernel_w; Linear: out_elements x in_features.
    """
    total = 0

    def conv_hook(m: nn.Conv2d, inputs, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inputs, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
               for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    finally:
        for h in handles:
            h.remove()
    return total


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of fn() over `repeats` timed calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency_and_throughput(forward: Callable[[np.ndarray | torch.Tensor], object], make_batch,
                           repeats_b1: int, repeats_b256: int) -> tuple[float, float]:
    """(ms per face at batch 1, faces per second at batch 256)."""
    one, many = make_batch(1), make_batch(256)
    ms = 1000 * median_seconds(lambda: forward(one), repeats_b1, warmup=10)
    fps = 256 / median_seconds(lambda: forward(many), repeats_b256, warmup=2)
    return ms, fps


def measure(model: str | Path, threads: int = 2, photos: list[np.ndarray] | None = None,
            repeats_b1: int = 200, repeats_b256: int = 10, exporter: str = "dynamo") -> dict:
    """All bench numbers for a model directory (torch and its ONNX export) or for an exported .onnx
    file (ONNX Runtime only; torch, parameter and MFLOP fields are None). `photos` (decoded BGR
    images) adds end-to-end speed."""
    from kplab.checkpoint import read_meta
    from kplab.faces.inference.export import OnnxModule, export_onnx
    from kplab.faces.training.model import count_params, load_model
    from kplab.faces.inference.predict import Predictor

    model = Path(model)
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)

    def images(n):  # (n, 1, 96, 96), laid out as evaluate.predict feeds the torch model
        return torch.rand(n, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen).contiguous(memory_format=torch.channels_last)

    result = dict.fromkeys(["params", "file_mb", "mmacs", "mflops", "torch_ms_b1", "torch_fps_b256"])
    if model.is_file():
        onnx_bytes = model.read_bytes()
        session = OnnxModule(onnx_bytes, threads=threads, spin=True)
        exporter = session.metadata.get("exporter", "?") + (", int8" if "quantization" in session.metadata else "")
    else:
        net = load_model(model)
        onnx_bytes = export_onnx(net, read_meta(model), exporter=exporter)
        session = OnnxModule(onnx_bytes, threads=threads, spin=True)  # latency as ONNX Runtime's defaults give it
        macs = count_macs(net)

        def torch_forward(x):
            with torch.inference_mode():
                return net(x)

        torch_ms, torch_fps = latency_and_throughput(torch_forward, images, repeats_b1, repeats_b256)
        result.update(params=count_params(net), file_mb=(model / "model.safetensors").stat().st_size / 1e6,
                      mmacs=macs / 1e6, mflops=2 * macs / 1e6, torch_ms_b1=torch_ms, torch_fps_b256=torch_fps)
    onnx_ms, onnx_fps = latency_and_throughput(session.run, lambda n: images(n).contiguous().numpy(),
                                               repeats_b1, repeats_b256)
    result.update(onnx_file_mb=len(onnx_bytes) / 1e6, threads=threads, onnx_ms_b1=onnx_ms, onnx_fps_b256=onnx_fps,
                  onnx_exporter=exporter, int8_ms_b1=None, int8_fps_b256=None, photos_per_s=None, n_photos=0)
    int8 = model / INT8_FILE if model.is_dir() else None
    if int8 is not None and int8.is_file():  # an int8 export shipped beside the weights is measured too
        quantised = OnnxModule(int8, threads=threads, spin=True)
        int8_ms, int8_fps = latency_and_throughput(quantised.run, lambda n: images(n).contiguous().numpy(),
                                                   repeats_b1, repeats_b256)
        result.update(int8_ms_b1=int8_ms, int8_fps_b256=int8_fps)
    if photos:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(onnx_bytes)
            predictor = Predictor(path, backend="onnx", threads=threads)
            seconds = median_seconds(lambda: predictor.predict_images(photos), repeats=5, warmup=1)
        result.update(photos_per_s=len(photos) / seconds, n_photos=len(photos))
    return result


def format_report(r: dict) -> str:
    """The bench table as text ("-" where a number does not apply, e.g. torch for a .onnx file)."""
    def num(key, fmt):
        return "-" if r[key] is None else format(r[key], fmt)

    lines = [
        f"parameters          {num('params', ',')}",
        f"weights file        {num('file_mb', '.2f')} MB (safetensors); ONNX file {r['onnx_file_mb']:.2f} MB",
        f"compute per face    {num('mflops', '.1f')} MFLOPs (= 2 x {num('mmacs', '.1f')} M multiply-accumulates, "
        "conv + linear)",
        f"threads             {r['threads']} (torch intra-op and ONNX Runtime intra-op)",
        "",
        "runtime            latency b=1 (ms/face)   throughput b=256 (faces/s)",
        f"torch eager        {num('torch_ms_b1', '.3f'):>21}   {num('torch_fps_b256', ',.0f'):>26}",
        f"ONNX Runtime       {r['onnx_ms_b1']:>21.3f}   {r['onnx_fps_b256']:>26,.0f}",
        *([f"ONNX Runtime int8  {r['int8_ms_b1']:>21.3f}   {r['int8_fps_b256']:>26,.0f}   ({INT8_FILE})"]
          if r.get("int8_ms_b1") is not None else []),
        "",
        f"median of repeated runs after warm-up; ONNX via the {r['onnx_exporter']} exporter",
    ]
    if r["photos_per_s"] is not None:
        lines.append(f"end to end          {r['photos_per_s']:.1f} photos/s (detect + framing + crop + "
                     f"predict, ONNX, {r['n_photos']} photos)")
    return "\n".join(lines)
