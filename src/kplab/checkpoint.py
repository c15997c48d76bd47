"""Model files: `NAME.safetensors` (tensors) beside `NAME.json` (everything else), and single-file states.

Both files of a pair are written atomically (temp file in the same folder, fsync, rename), weights
first; the JSON records the weights' SHA-256 so a half-replaced pair is detected on load. State that
must survive a kill at any moment (a training run's) goes into ONE safetensors file with its JSON in
the file's own header (`save_state`), so a reader finds the old state or the new one, never new
tensors beside old metadata. Nothing is ever unpickled: safetensors holds raw tensors, JSON plain data.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from kplab.errors import CheckpointError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` so that `path` holds either the old or the new contents, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared like any output file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save(directory: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
         name: str = "model") -> Path:
    """Save tensors and JSON metadata as `directory/name.{safetensors,json}`; returns the weights path."""
    directory = Path(directory)
    blob = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    weights = directory / f"{name}.safetensors"
    atomic_write_bytes(weights, blob)
    atomic_write_json(directory / f"{name}.json", {**meta, "weights_sha256": hashlib.sha256(blob).hexdigest()})
    return weights


def read_meta(directory: str | Path, name: str = "model") -> dict[str, Any]:
    """The JSON metadata `save` wrote (weights_sha256 included), without reading the weights."""
    meta_path = Path(directory) / f"{name}.json"
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: not found (is {directory} a kplab model directory?)")
    try:
        return json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{meta_path}: not valid JSON: {e}") from None


def load(directory: str | Path, name: str = "model") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load what `save` wrote; raises CheckpointError naming the file when anything is off."""
    directory = Path(directory)
    weights, meta_path = directory / f"{name}.safetensors", directory / f"{name}.json"
    if not weights.is_file():
        raise CheckpointError(f"{weights}: not found (is {directory} a kplab model directory?)")
    meta = read_meta(directory, name)
    blob = weights.read_bytes()
    expected = meta.pop("weights_sha256", None)
    if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
        raise CheckpointError(f"{weights}: does not match {meta_path.name} (checksum differs); "
                              "the pair was not written together")
    try:
        tensors = st_load(blob)
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{weights}: not a valid safetensors file: {e}") from None
    return tensors, meta


STATE_KEY = "kplab"  # the safetensors header metadata entry that holds a state's JSON


def save_state(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Tensors and their JSON metadata as one safetensors file, replaced atomically."""
    blob = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                   metadata={STATE_KEY: json.dumps(meta)})
    atomic_write_bytes(path, blob)


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What `save_state` wrote; raises CheckpointError naming the file when anything is off."""
    path = Path(path)
    try:
        blob = path.read_bytes()
        header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])
        meta = json.loads(header["__metadata__"][STATE_KEY])
        return st_load(blob), meta
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
    except Exception as e:  # a truncated or foreign file: bad header, no kplab metadata, bad tensors
        raise CheckpointError(f"{path}: not a kplab training state ({type(e).__name__}: {e})") from None
