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
@click.option("--data", "data_path", default=None,
              help="I2DL folder, Kaggle CSV, .npz, packed folder (`kplab pack`), or annotated photos (folder "
                   "with .pts files, imglab .xml, photo CSV); synthetic faces when omitted")
@click.option("--val", "val_path", default=None,
              help="validation faces (any --data form); default: the data's val split, or a seeded hold-out")
@click.option("--layout", default=None, help="keypoint layout (kaggle15, ibug68 or a layout .json)  "
                                             "[default: the data's own]")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None, help="training recipe (default: default)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="TOML config file")
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE", help="override a config field, e.g. --set epochs=3 lr=1e-3")
@click.option("--out", default="runs/faces", type=click.Path(file_okay=False), help="output directory")
@click.option("--seed", type=int, default=None, help="random seed (overrides the config)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--resume", is_flag=True, help="continue an interrupted run in --out")
@click.argument("extra", nargs=-1, metavar="")
def train(data_path, val_path, layout, preset, config_file, set_items, out, seed, device, resume, extra):
    """Train a face keypoint model; writes model.safetensors, model.json, metrics.json, curves.png, val_grid.png.

    Data-parallel: `torchrun --nproc-per-node N -m kplab train ...` (batch_size is the global batch)."""
    from kplab.config import load_config, to_dict
    from kplab.distributed import is_main_process
    from kplab.faces.training.data import read_train_val
    from kplab.faces.training.layout import get_layout
    from kplab.faces.training.train import TrainConfig, train as run_training
    from kplab.faces.training.evaluate import write_training_figures
    from kplab.progress import say

    overrides = _overrides(set_items, extra) + ([f"seed={seed}"] if seed is not None else [])
    if preset is None and config_file is None:
        preset = "default"
    cfg = load_config(TrainConfig, preset=PRESETS.get(preset) if preset else None, file=config_file,
                      overrides=overrides)
    say("config: " + json.dumps(to_dict(cfg), separators=(",", ":")))
    # The split is a property of the data, not of the run (a hold-out uses a fixed seed of 0).
    train_set, val_set = read_train_val(data_path, layout=get_layout(layout) if layout else None, val=val_path)
    say(f"layout {train_set.layout.name}: {train_set.layout.n_points} points")
    summary = run_training(cfg, train_set, val_set, out, device=_device(device), resume=resume,
                           config_extra={"data": str(data_path or "synthetic"), "preset": preset,
                                         **({"val": str(val_path)} if val_path else {})})
    if is_main_process():  # under torchrun the other ranks have nothing to draw or say
        write_training_figures(out, summary["history"], val_set)
        say(f"best val score {summary['best_val_score']:.1f}; model in {out}")


@click.command(context_settings={"show_default": True})
@click.argument("model")
@click.option("--data", "data_path", default=None,
              help="faces to score (any `train --data` form); synthetic faces when omitted")
@click.option("--split", default=None, help="split to evaluate (default: val, or the data's hold-out)")
@click.option("--layout", default=None,
              help="score in this layout, derived from the model's (e.g. kaggle15 for a 68-point model)")
@click.option("--tta/--no-tta", default=None, show_default=False,
              help="average with the prediction on the mirrored image  [default: as the model records; "
                   "on for models trained with val_tta, as the best preset's]")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="write figures and tables here  [default: MODEL/eval for a model directory, "
                   "./eval-NAME for a shipped model or an .onnx file]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
def evaluate(model, data_path, split, layout, tta, as_json, out, device):
    """Score MODEL (a model directory, a shipped name like `default` or `faces68`, or an .onnx file): I2DL
    score, RMSE, NME, FR@0.1, AUC@0.1, per-region errors, CED plot, per-keypoint table, face grids."""
    from kplab.faces.training.data import available_splits, read_faces, read_train_val
    from kplab.faces.training.evaluate import evaluation_report, in_layout
    from kplab.faces.training.layout import get_layout
    from kplab.faces.inference.predict import load_any_model, report_dir
    from kplab.faces.training.model import recorded_tta
    from kplab.progress import say

    module, model_layout, meta = load_any_model(model)
    scored = get_layout(layout) if layout else model_layout
    module = in_layout(module.to(_device(device)), model_layout, scored)
    if split is None and "val" in available_splits(data_path):
        split = "val"
    faces = (read_train_val(data_path, layout=scored)[1] if split is None  # the hold-out training would use
             else read_faces(data_path, split, layout=scored))
    target = Path(out) if out else report_dir(model)
    metrics, table = evaluation_report(module, faces, target, tta=recorded_tta(meta) if tta is None else tta)
    if out is None:
        say(f"report written to {target}")
    if as_json:
        click.echo(json.dumps(metrics))
    else:
        click.echo(table)


@click.command(context_settings={"show_default": True})
@click.argument("photos")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the .npz to write")
@click.option("--layout", default=None, help="keypoint layout  [default: from the annotations' names or count]")
def crop(photos, out, layout):
    """Cut the annotated faces of PHOTOS (a folder with .pts files, an imglab .xml or a photo CSV) into
    96x96 training crops once, framed exactly as `predict` frames faces; `train --data OUT` then skips
    decoding the photos."""
    from kplab.faces.training.data import write_npz
    from kplab.faces.training.layout import get_layout
    from kplab.faces.training.photo_faces import read_photo_faces
    from kplab.progress import say

    faces = read_photo_faces(photos, get_layout(layout) if layout else None)
    write_npz(out, faces)
    say(f"wrote {out}: {len(faces)} faces from {len(set(faces.photo))} photos, layout {faces.layout.name}")
