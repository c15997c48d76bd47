"""ONNX export of a face keypoint model, and an ONNX Runtime session that behaves like the torch model.

The exported file is self-contained (weights inside, no external data file), takes `image` (N, 1, 96,
96) float32 in [0, 1] with a dynamic batch size N and returns `keypoints` (N, 2K) in I2DL-normalised
coordinates, exactly like `model(image)`. Its metadata_props carry what a user of the file needs
without kplab: opset, layout (names, flip pairs, regions, references), normalisation, the training mean
shape and framing target (for framing photos), the recorded val metrics and the SHA-256 of the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kplab.checkpoint import atomic_write_bytes, read_meta
from kplab.errors import CheckpointError
from kplab.faces.training.layout import IMAGE_SIZE, Layout
from kplab.faces.training.model import recorded_tta

OPSET = 18  # the lowest opset the torch.export-based exporter emits; ONNX Runtime >= 1.14 runs it
INPUT_NAME, OUTPUT_NAME = "image", "keypoints"
EXPORTERS = ("dynamo", "torchscript")


def export_onnx(model: nn.Module, meta: dict, exporter: str = "dynamo", opset: int = OPSET) -> bytes:
    """Serialise `model` (eval mode) to ONNX bytes with `meta` (model.json contents) in metadata_props.

    exporter "dynamo" is torch's current exporter (torch.export graph capture; about 10-20 s here);
    "torchscript" is the older tracing exporter (deprecated by torch, about 1 s, same graph results).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    import onnx

    model = model.eval()
    example = (torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE),)
    names = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    if exporter == "dynamo":
        with _quiet_torch_internals():
            program = torch.onnx.export(model, example, dynamo=True, external_data=False, verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), **names)
        proto = program.model_proto
    else:
        buffer = io.BytesIO()
        torch.onnx.export(model, example, buffer, dynamo=False,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **names)
        proto = onnx.load_from_string(buffer.getvalue())
    recorded = {
        "kplab_version": meta.get("kplab_version", ""),
        "exporter": exporter,
        "opset": str(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))),
        "layout": json.dumps(meta["layout"]),
        "normalisation": json.dumps(meta.get("normalisation", {})),
        "mean_shape": json.dumps(meta.get("mean_shape")),
        **({"framing_target": json.dumps(meta["framing_target"])} if "framing_target" in meta else {}),
        "metrics": json.dumps(meta.get("metrics")),
        "flip_tta": json.dumps(recorded_tta(meta)),
        "n_params": str(meta.get("n_params", "")),
        "weights_sha256": meta.get("weights_sha256", ""),
        "input": f"{INPUT_NAME}: float32 (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), grey pixels / 255",
        "output": f"{OUTPUT_NAME}: float32 (N, {2 * len(meta['layout']['names'])}), (x, y) pairs, "
                  "I2DL-normalised",
    }
    del proto.metadata_props[:]
    for key, value in recorded.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def quantize_int8(onnx_bytes: bytes, calibration: np.ndarray) -> bytes:
    """Static int8 quantisation (ONNX Runtime, QDQ format, per-channel int8 weights, uint8
    activations calibrated on `calibration` faces (N, 1, 96, 96) float32 in [0, 1]).

    The last convolution and everything after it stay float: the heatmap logits feed a softmax
    whose soft-argmax needs their fine differences. Measured on faces15 val with the 2.0 M-parameter
    network: quantising every layer dropped the score from 527 to 256, keeping the head float gave 526;
    the shipped network's int8 file scores 530 (float 532).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or calibration.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE) or not len(calibration):
        raise ValueError(f"calibration images must be (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), got {calibration.shape}")

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(calibration, max(1, len(calibration) // 32)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    source = onnx.load_from_string(onnx_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        plain, prepared, quantised = (Path(tmp) / n for n in ("plain.onnx", "prepared.onnx", "int8.onnx"))
        plain.write_bytes(onnx_bytes)
        quant_pre_process(str(plain), str(prepared))  # shape inference + graph clean-up, as ORT advises
        graph = onnx.load(str(prepared)).graph.node  # topological order
        last_conv = max(i for i, n in enumerate(graph) if n.op_type == "Conv")
        quantize_static(str(prepared), str(quantised), Batches(), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        nodes_to_exclude=[n.name for n in graph[last_conv:]])
        proto = onnx.load(str(quantised))
    del proto.metadata_props[:]
    for prop in source.metadata_props:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    proto.metadata_props.add(key="quantization", value=f"int8 static (QDQ, per-channel weights), calibrated "
                                                         f"on {len(calibration)} faces; head conv + soft-argmax float")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


@contextlib.contextmanager
def _quiet_torch_internals():
    """Hide the exporter's notes about torch internals that do not concern users (torchvision ops it
    skips, deprecations inside torch's own pytree code); real errors still raise."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch")
            yield
    finally:
        logger.setLevel(level)


def export_model_dir(model_dir: str | Path, out: str | Path, exporter: str = "dynamo", opset: int = OPSET,
                     calibration: np.ndarray | None = None) -> Path:
    """Export the model in a kplab model directory to the single file `out`; returns its path.
    With `calibration` faces (N, 1, 96, 96) the file is int8-quantised (see `quantize_int8`)."""
    from kplab.faces.training.model import load_model

    model_dir, out = Path(model_dir), Path(out)
    meta = read_meta(model_dir)
    data = export_onnx(load_model(model_dir), meta, exporter, opset)
    if calibration is not None:
        data = quantize_int8(data, calibration)
    atomic_write_bytes(out, data)
    return out


def weights_sha256(model_dir: str | Path) -> str:
    return hashlib.sha256((Path(model_dir) / "model.safetensors").read_bytes()).hexdigest()


class OnnxModule(nn.Module):
    """An ONNX Runtime CPU session with the torch model's interface: (N, 1, 96, 96) -> (N, 2K).

    Being an nn.Module lets the torch code paths (flip TTA, batching, forward hooks that count calls)
    run unchanged on either backend. `threads` sets ONNX Runtime's intra-op threads (None: its default).
    `spin`: let idle intra-op threads spin-wait for work (ONNX Runtime's default), which shaves latency
    off back-to-back calls but burns CPU between them; off, a server doing other work between model calls
    (decoding, detection) spent 45 instead of 64 ms of CPU per photo (bench/serve_load.py, 1 start,
    2 passes, with a training run beside it).
    """

    def __init__(self, source: str | Path | bytes, threads: int | None = None, spin: bool = False):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        if threads:
            options.intra_op_num_threads = threads
        label = "ONNX bytes" if isinstance(source, bytes) else str(source)
        try:
            self.session = ort.InferenceSession(source if isinstance(source, bytes) else str(source),
                                                options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime raises its own types for missing / corrupt files
            raise CheckpointError(f"{label}: not a loadable ONNX model: {e}") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if "layout" not in self.metadata:
            raise CheckpointError(f"{label}: no kplab layout in its metadata (export it with `kplab export`)")
        self.layout = Layout.from_dict(json.loads(self.metadata["layout"]))
        # model.json's fields as far as the file carries them (framing, metrics, hash, normalisation)
        self.meta = {key: json.loads(self.metadata[key]) for key in
                     ("layout", "normalisation", "mean_shape", "framing_target", "metrics", "flip_tta")
                     if key in self.metadata}
        self.meta.update({key: self.metadata[key] for key in ("weights_sha256", "kplab_version") if key in self.metadata})
        if self.metadata.get("n_params", "").isdigit():
            self.meta["n_params"] = int(self.metadata["n_params"])

    def run(self, images: np.ndarray) -> np.ndarray:
        """(N, 1, 96, 96) float32 -> (N, 2K) float32."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(images.detach().cpu().numpy()))
