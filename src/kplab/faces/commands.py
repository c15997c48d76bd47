"""`kplab train` and `kplab evaluate`: option parsing and wiring only."""

from __future__ import annotations

import json
from pathlib import Path

import click

PRESETS = {"fast": "faces-fast", "default": "faces-default", "best": "faces-best"}


def _overrides(set_items: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    """`--set a=1 b=2` leaves `b=2` as a positional token; accept both spellings."""
    for token in extra:
        if "=" not in token:
            raise click.UsageError(f"unexpected argument {token!r} (overrides look like key=value)")
    return [*set_items, *extra]


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise click.UsageError("--device cuda: no CUDA device is available to this torch build")
    return name


@click.command(context_settings={"show_default": True})
@click.option("--data", "data_path", default=None, help="I2DL folder, Kaggle CSV, .npz or packed folder; synthetic faces when omitted")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None, help="training recipe (default: default)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="TOML config file")
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE", help="override a config field, e.g. --set epochs=3 lr=1e-3")
@click.option("--out", default="runs/faces", type=click.Path(file_okay=False), help="output directory")
@click.option("--seed", type=int, default=None, help="random seed (overrides the config)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--resume", is_flag=True, help="continue an interrupted run in --out")
@click.argument("extra", nargs=-1, metavar="")
def train(data_path, preset, config_file, set_items, out, seed, device, resume, extra):
    """Train a face keypoint model; writes model.safetensors, model.json, metrics.json, curves.png, val_grid.png.

    Data-parallel: `torchrun --nproc-per-node N -m kplab train ...` (batch_size is the global batch)."""
    from kplab.config import load_config, to_dict
    from kplab.distributed import is_main_process
    from kplab.faces.data import read_train_val
    from kplab.faces.train import TrainConfig, train as run_training
    from kplab.faces.evaluate import write_training_figures
    from kplab.progress import say

    overrides = _overrides(set_items, extra) + ([f"seed={seed}"] if seed is not None else [])
    if preset is None and config_file is None:
        preset = "default"
    cfg = load_config(TrainConfig, preset=PRESETS.get(preset) if preset else None, file=config_file,
                      overrides=overrides)
    say("config: " + json.dumps(to_dict(cfg), separators=(",", ":")))
    train_set, val_set = read_train_val(data_path)  # the split is a property of the data, not of the run
    summary = run_training(cfg, train_set, val_set, out, device=_device(device), resume=resume,
                           config_extra={"data": str(data_path or "synthetic"), "preset": preset})
    if is_main_process():  # under torchrun the other ranks have nothing to draw or say
        write_training_figures(out, summary["history"], val_set)
        say(f"best val score {summary['best_val_score']:.1f}; model in {out}")


@click.command(context_settings={"show_default": True})
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data_path", default=None, help="I2DL folder, Kaggle CSV or .npz; synthetic faces when omitted")
@click.option("--split", default=None, help="split to evaluate (default: val)")
@click.option("--tta", is_flag=True, help="average with the prediction on the mirrored image")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="write figures and tables here (default: MODEL_DIR/eval)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
def evaluate(model_dir, data_path, split, tta, as_json, out, device):
    """Score a model: I2DL score, RMSE, NME, FR@0.1, AUC@0.1, CED plot, per-keypoint table, face grids."""
    from kplab.faces.data import read_faces, read_train_val
    from kplab.faces.model import load_model
    from kplab.faces.evaluate import evaluation_report

    model = load_model(model_dir, device=_device(device))
    faces = read_train_val(data_path)[1] if split is None else read_faces(data_path, split)
    metrics, table = evaluation_report(model, faces, Path(out or Path(model_dir) / "eval"), tta=tta)
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        click.echo(table)
