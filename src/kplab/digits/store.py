"""Digits model directories: weights via kplab.checkpoint (safetensors + JSON), the whole config inside.

`DIR/model.safetensors` + `DIR/model.json`; the JSON holds `kind`, the full `DigitsConfig`, the
parameter count and the stage's metrics, so any later stage or `evaluate` rebuilds the same network
and the same split from the directory alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from kplab import checkpoint
from kplab.config import from_dict, to_dict
from kplab.digits.model import Autoencoder, Classifier, count_params
from kplab.digits.recipe import DigitsConfig
from kplab.errors import CheckpointError, ConfigError

KINDS = {"digits-autoencoder": Autoencoder, "digits-classifier": Classifier}


def save_model(directory: str | Path, model: nn.Module, cfg: DigitsConfig, metrics: dict[str, Any]) -> Path:
    """Save after checking the I2DL limits (parameters, file size); returns the weights path."""
    kind = next(k for k, cls in KINDS.items() if isinstance(model, cls))
    params = count_params(model)
    if kind == "digits-classifier" and params >= cfg.max_params:
        raise ConfigError(f"model has {params:,} parameters; the limit is {cfg.max_params:,} (max_params)")
    weights = checkpoint.save(directory, model.state_dict(),
                              {"kind": kind, "params": params, "config": to_dict(cfg), "metrics": metrics})
    size_mb = weights.stat().st_size / 1e6
    if kind == "digits-classifier" and size_mb >= cfg.max_file_mb:
        raise ConfigError(f"{weights}: {size_mb:.1f} MB; the limit is {cfg.max_file_mb} MB (max_file_mb)")
    return weights


def load_model(directory: str | Path, kind: str) -> tuple[nn.Module, DigitsConfig, dict[str, Any]]:
    """Rebuild the model saved in `directory`; `kind` says what the caller needs."""
    tensors, meta = checkpoint.load(directory)
    if meta.get("kind") != kind:
        raise CheckpointError(f"{directory}: holds {meta.get('kind')!r}, expected {kind!r}")
    cfg = from_dict(DigitsConfig, meta.get("config", {}), where=f"{directory}/model.json config")
    model = KINDS[kind](cfg.model)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"{directory}: weights do not fit the saved config: {e}") from None
    model.eval()
    return model, cfg, meta
