"""`train(resume=True)` keeps the best-model bookkeeping: a run stopped after epoch k and resumed ends
with the same best score, the same saved best weights and the same history as the run never stopped.

The run is chosen so that val does NOT improve every epoch (a tiny network at a learning rate far too
high: the best epoch is the first), which is what exercises the bookkeeping; the test checks that
premise first. Stopping is a real exception raised in the middle of the loop (the stderr stream
fails when epoch k+1 reports), so the state on disk is whatever epoch k left, as after a crash.
"""

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from kplab.checkpoint import load_state
from kplab.faces.training.model import ModelConfig
from kplab.faces.training.synthetic import synthetic_faces
from kplab.faces.training.train import TrainConfig, train

EPOCHS = 5
# seed 2: a run that meets the premise below (the augmentation's random stream decides it; re-pick if that stream changes)
CFG = TrainConfig(model=ModelConfig(widths=(4, 4, 8, 8), blocks=(0, 0, 0, 0), head_width=4), epochs=EPOCHS,
                  batch_size=8, lr=3.0, warmup_epochs=0, ema_decay=0.0, threads=1, seed=2)


class Crash(Exception):
    pass


class StderrThatCrashesAt:
    """A stderr stand-in that raises when the given text is written (a crash at that moment)."""

    def __init__(self, text: str):
        self.text = text

    def write(self, s: str) -> int:
        if self.text in s:
            raise Crash(s)
        return len(s)

    def flush(self):
        pass

    def isatty(self) -> bool:
        return False


@pytest.fixture(scope="module")
def data():
    return synthetic_faces(32, seed=1), synthetic_faces(8, seed=2)


@pytest.fixture(scope="module")
def whole(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    summary = train(CFG, *data, out)
    scores = [h["val_score"] for h in summary["history"]]
    best_epoch = scores.index(max(scores)) + 1
    # The premise: the best epoch is not the last, and some later epoch improves on its predecessor
    # without reaching the best (so neither "best = -inf" nor "best = last score" survives a resume).
    assert best_epoch < EPOCHS - 1, scores
    assert any(later > before for before, later in zip(scores[best_epoch:], scores[best_epoch + 1:])), scores
    return out, summary, best_epoch


def fingerprint(out):
    model = load_file(out / "model.safetensors")
    meta = json.loads((out / "model.json").read_text())
    return model, meta["metrics"], json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("stop_after", [1, 2])
def test_resume_after_epoch_k_keeps_the_best_score_and_best_weights(data, whole, tmp_path, monkeypatch, stop_after):
    ref_dir, ref_summary, best_epoch = whole
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", StderrThatCrashesAt(f"epoch {stop_after + 1}/{EPOCHS}:"))
        with pytest.raises(Crash):
            train(CFG, *data, tmp_path)
    assert load_state(tmp_path / "state" / "train.safetensors")[1]["epoch"] == stop_after - 1
    summary = train(CFG, *data, tmp_path, resume=True)
    assert summary["best_val_score"] == ref_summary["best_val_score"]
    assert [h["val_score"] for h in summary["history"]] == [h["val_score"] for h in ref_summary["history"]]
    elapsed = [h["elapsed_s"] for h in summary["history"]]  # the clock runs on from the stopped run's
    assert all(0 < a < b for a, b in zip(elapsed, elapsed[1:])), elapsed
    model, model_metrics, metrics = fingerprint(tmp_path)
    ref_model, ref_model_metrics, ref_metrics = fingerprint(ref_dir)
    assert model_metrics["epoch"] == ref_model_metrics["epoch"] == best_epoch  # the best epoch's weights ...
    assert model.keys() == ref_model.keys()
    for key in model:  # ... bit for bit
        assert model[key].equal(ref_model[key]), key
    assert metrics["best_val_score"] == ref_metrics["best_val_score"]


def test_resume_restores_the_weight_average_and_the_optimizer(data, tmp_path, monkeypatch):
    import dataclasses

    cfg = dataclasses.replace(CFG, epochs=2, epoch_steps=2, ema_decay=0.9, lr=0.01)  # the EMA lags the weights
    train(cfg, *data, tmp_path / "whole")
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", StderrThatCrashesAt(f"epoch 2/2:"))
        with pytest.raises(Crash):
            train(cfg, *data, tmp_path / "resumed")
    train(cfg, *data, tmp_path / "resumed", resume=True)
    a, _ = load_state(tmp_path / "whole" / "state" / "train.safetensors")
    b, _ = load_state(tmp_path / "resumed" / "state" / "train.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
