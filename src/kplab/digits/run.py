"""The pipeline: one function per stage (train, score, save, time), and `run_pipeline` chaining them.

Output layout of `run --out DIR`:
  DIR/pretrain/           the autoencoder (stage 1)
  DIR/transfer/           the classifier after stage 2
  DIR/teacher/ student/   stage 3; the teacher is the submitted model
  DIR/scratch/...         the same classifier through stages 2 and 3 without pretraining
  DIR/results.json, results.md, reconstructions.png, curves.png
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from kplab.checkpoint import atomic_write_bytes, atomic_write_json
from kplab.config import to_dict
from kplab.digits import report
from kplab.digits.augment import corrupt
from kplab.digits.data import read_mnist
from kplab.digits.dataset import Parts, build_parts
from kplab.digits.download import fetch_mnist
from kplab.digits.evaluate import scores
from kplab.digits.mean_teacher import teach
from kplab.digits.model import Autoencoder, Classifier
from kplab.digits.pretrain import pretrain
from kplab.digits.recipe import DigitsConfig
from kplab.digits.split import i2dl_split
from kplab.digits.store import save_model
from kplab.digits.transfer import transfer
from kplab.errors import ConfigError
from kplab.progress import say

STAGE_SEEDS = {"pretrain": 1, "transfer": 2, "teach": 3}  # each stage reseeds, so stage commands = run


def device_of(cfg: DigitsConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(cfg.device)
    except RuntimeError:
        raise ConfigError(f"device={cfg.device!r} is not a torch device (auto, cpu, cuda, cuda:1 ...)") from None


def load_parts(source: str, cfg: DigitsConfig, cache: str | Path | None = None) -> Parts:
    """MNIST from a folder, an .npz, or an http(s) base URL of the idx files (downloaded into `cache`),
    split and moved to the config's device."""
    device = device_of(cfg)  # a bad device name fails before any data is read
    path = fetch_mnist(source, cache) if source.startswith(("http://", "https://")) else source
    mnist = read_mnist(path)
    return build_parts(mnist, i2dl_split(mnist.y_train, cfg.split)).to(device)


def seeded(cfg: DigitsConfig, stage: str) -> torch.Generator:
    """Seed torch's global RNG (init, dropout) and return a generator for sampling and augmentation."""
    seed = cfg.seed * 100 + STAGE_SEEDS[stage]
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def stage_pretrain(parts: Parts, cfg: DigitsConfig, out: Path) -> tuple[Autoencoder, dict, dict]:
    gen = seeded(cfg, "pretrain")
    start = time.perf_counter()
    model, history = pretrain(parts.x_unlabeled, parts.x_unlabeled_val, cfg, gen)
    wall = time.perf_counter() - start
    metrics = {"best_val_loss": history["best_val_loss"], "best_epoch": history["best_epoch"], "wall_s": wall}
    save_model(out, model, cfg, metrics)
    row = {"stage": "1 DAE pretrain", "wall_s": wall,
           "note": f"unlabeled-val BCE {history['best_val_loss']:.4f} (best epoch {history['best_epoch']})"}
    return model, history, row


def classifier_from(autoencoder: Autoencoder | None, cfg: DigitsConfig, stage: str) -> Classifier:
    """A fresh classifier (head always fresh); its encoder copied from the autoencoder when given."""
    seeded(cfg, stage)
    model = Classifier(cfg.model)
    if autoencoder is not None:
        model.encoder.load_state_dict(autoencoder.encoder.state_dict())
    return model.to(device_of(cfg))


def stage_transfer(model: Classifier, parts: Parts, cfg: DigitsConfig, out: Path, label: str) -> tuple[dict, dict]:
    gen = seeded(cfg, "transfer")
    start = time.perf_counter()
    history = transfer(model, parts, cfg, gen)
    wall = time.perf_counter() - start
    result = scores(model, parts)
    save_model(out, model, cfg, {**result, "wall_s": wall})
    return history, {"stage": label, **result, "wall_s": wall}


def stage_teach(student: Classifier, parts: Parts, cfg: DigitsConfig, out: Path,
                label: str) -> tuple[Classifier, dict, list[dict]]:
    """Saves `out/teacher` (the submission) and `out/student`; rows for both."""
    gen = seeded(cfg, "teach")
    start = time.perf_counter()
    teacher, history = teach(student, parts, cfg, gen)
    wall = time.perf_counter() - start
    rows = []
    for name, model in (("teacher", teacher), ("student", student)):
        result = scores(model, parts)
        save_model(out / name, model, cfg, {**result, "wall_s": wall})
        rows.append({"stage": f"{label} {name}", **result, "wall_s": wall if name == "teacher" else None,
                     "note": "submitted" if name == "teacher" else "same run as teacher"})
    return teacher, history, rows


def save_pictures(autoencoder: Autoencoder, parts: Parts, cfg: DigitsConfig, histories: dict, out: Path) -> None:
    clean = parts.x_test[:10]  # (10, 784) first ten test digits
    noisy = corrupt(clean, cfg.pretrain.mask_rate, cfg.pretrain.noise_std, torch.Generator().manual_seed(0))
    with torch.no_grad():
        recon = torch.sigmoid(autoencoder(noisy))
    report.reconstruction_grid(clean, noisy, recon, out / "reconstructions.png")
    report.curves(histories, out / "curves.png")


def run_pipeline(parts: Parts, cfg: DigitsConfig, out: str | Path) -> dict:
    """Stages 1-3 (and the from-scratch comparison when `cfg.compare_scratch`); writes the results files."""
    out = Path(out)
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    rows: list[dict] = []
    autoencoder, dae_hist, row = stage_pretrain(parts, cfg, out / "pretrain")
    rows.append(row)
    model = classifier_from(autoencoder, cfg, "transfer")
    tr_hist, row = stage_transfer(model, parts, cfg, out / "transfer", "2 transfer (pretrained)")
    rows.append(row)
    _, mt_hist, mt_rows = stage_teach(model, parts, cfg, out, "3 Mean Teacher")
    rows += mt_rows
    pipeline_s = time.perf_counter() - start
    histories = {"pretrain": dae_hist, "transfer": tr_hist, "teach": mt_hist}
    save_pictures(autoencoder, parts, cfg, histories, out)
    scratch_s = None
    if cfg.compare_scratch:
        say("comparison: the same classifier through stages 2 and 3 from scratch (no pretraining)")
        t0 = time.perf_counter()
        fresh = classifier_from(None, cfg, "transfer")
        hist, row = stage_transfer(fresh, parts, cfg, out / "scratch" / "transfer", "2 transfer (scratch)")
        rows.append(row)
        _, hist3, rows3 = stage_teach(fresh, parts, cfg, out / "scratch", "3 Mean Teacher (scratch)")
        rows += rows3
        histories["scratch"] = {"transfer": hist, "teach": hist3}
        scratch_s = time.perf_counter() - t0
    results = {"rows": rows, "pipeline_wall_s": pipeline_s, "scratch_wall_s": scratch_s,
               "total_wall_s": time.perf_counter() - start, "config": to_dict(cfg), "histories": histories}
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "results.md", (table_text(results) + "\n").encode())
    return results


def table_text(results: dict) -> str:
    lines = [report.format_table(results["rows"]), "",
             f"pipeline (stages 1-3) wall: {results['pipeline_wall_s']:.0f} s"]
    if results.get("scratch_wall_s") is not None:
        lines.append(f"from-scratch comparison (stages 2-3) wall: {results['scratch_wall_s']:.0f} s")
    return "\n".join(lines)
