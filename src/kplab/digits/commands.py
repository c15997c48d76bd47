"""`kplab digits ...`: wiring only. Torch and the training code are imported inside each command
so that `kplab --help` stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _config_options(f):
    """Options every training command shares: where the numbers come from."""
    options = [
        click.option("--data", required=True, help="MNIST: folder of idx files (raw or .gz), an .npz, or an http(s) base URL."),
        click.option("--cache", type=click.Path(file_okay=False), default=None,
                     help="Download cache for --data URLs (default ~/.cache/kplab/mnist or $KPLAB_CACHE/mnist)."),
        click.option("--preset", default=None, help="digits (the recipe, default), beyond (w = 100) or best (beyond + elastic, 60 epochs cosine)."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="A TOML config file."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override any field, e.g. teach.epochs=10."),
        click.option("--labels", type=int, default=None, help="Labeled train size (split.labeled_train; default 100)."),
        click.option("--seed", type=int, default=None, help="Training seed (the split keeps split.seed)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _preset_name(name: str | None) -> str | None:
    if name is None or name.startswith("digits"):
        return name
    return f"digits-{name}"


def _build_config(preset, config_file, overrides, labels, seed, base=None):
    """Defaults (or a saved stage's config), then preset/file, then --set, then --labels/--seed."""
    from kplab.config import apply_overrides, load_config
    from kplab.digits.recipe import DigitsConfig

    cfg = load_config(DigitsConfig, preset=_preset_name(preset), file=config_file, overrides=overrides, base=base)
    extra = ([f"split.labeled_train={labels}"] if labels is not None else []) + ([f"seed={seed}"] if seed is not None else [])
    return apply_overrides(cfg, extra)


def _setup(cfg):
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # N copies would train N identical models into one folder
        raise click.UsageError("digits training runs in one process (README: Scaling out); run it without torchrun")
    torch.set_num_threads(cfg.threads)


@click.group()
def digits():
    """Semi-supervised MNIST: DAE pretraining, transfer, Mean Teacher (I2DL exercise 8)."""


@digits.command()
@_config_options
@click.option("--out", type=click.Path(file_okay=False), default="runs/digits", show_default=True)
@click.option("--compare-scratch/--no-compare-scratch", default=None,
              help="Also train the same classifier through stages 2-3 without pretraining (default: off).")
def run(data, cache, preset, config_file, overrides, labels, seed, out, compare_scratch):
    """All three stages; prints and saves the per-stage table, pictures and curves."""
    from kplab.config import apply_overrides
    from kplab.digits.run import load_parts, run_pipeline, table_text

    cfg = _build_config(preset, config_file, overrides, labels, seed)
    if compare_scratch is not None:
        cfg = apply_overrides(cfg, [f"compare_scratch={str(compare_scratch).lower()}"])
    _setup(cfg)
    parts = load_parts(data, cfg, cache)
    results = run_pipeline(parts, cfg, out)
    click.echo(table_text(results))
    click.echo(f"saved: {out}/teacher (submitted model), {out}/results.json, {out}/reconstructions.png, {out}/curves.png")


@digits.command("pretrain")
@_config_options
@click.option("--out", type=click.Path(file_okay=False), required=True)
def pretrain_cmd(data, cache, preset, config_file, overrides, labels, seed, out):
    """Stage 1: denoising autoencoder on the unlabeled images -> OUT (autoencoder)."""
    from kplab.digits.run import load_parts, stage_pretrain

    cfg = _build_config(preset, config_file, overrides, labels, seed)
    _setup(cfg)
    _, _, row = stage_pretrain(load_parts(data, cfg, cache), cfg, Path(out))
    click.echo(f"{row['stage']}: {row['note']}, {row['wall_s']:.0f} s -> {out}")


@digits.command("transfer")
@_config_options
@click.option("--pretrained", type=click.Path(file_okay=False), default=None, help="Stage-1 directory.")
@click.option("--scratch", is_flag=True, help="No pretraining: a fresh encoder.")
@click.option("--out", type=click.Path(file_okay=False), required=True)
def transfer_cmd(data, cache, preset, config_file, overrides, labels, seed, pretrained, scratch, out):
    """Stage 2: classifier from the pretrained encoder (or --scratch) -> OUT."""
    from kplab.digits.run import classifier_from, load_parts, stage_transfer
    from kplab.digits.store import load_model
    from kplab.errors import ConfigError

    if (pretrained is None) == (not scratch):
        raise ConfigError("give exactly one of --pretrained DIR or --scratch")
    autoencoder, base = None, None
    if pretrained:
        autoencoder, base, _ = load_model(pretrained, "digits-autoencoder")
    cfg = _build_config(preset, config_file, overrides, labels, seed, base=base)
    _setup(cfg)
    parts = load_parts(data, cfg, cache)
    model = classifier_from(autoencoder, cfg, "transfer")
    _, row = stage_transfer(model, parts, cfg, Path(out), "2 transfer")
    _echo_scores(row, out)


@digits.command("teach")
@_config_options
@click.option("--model", "model_dir", type=click.Path(file_okay=False), required=True, help="Stage-2 directory.")
@click.option("--out", type=click.Path(file_okay=False), required=True)
def teach_cmd(data, cache, preset, config_file, overrides, labels, seed, model_dir, out):
    """Stage 3: Mean Teacher from a stage-2 classifier -> OUT/teacher (submitted) and OUT/student."""
    from kplab.digits.run import device_of, load_parts, stage_teach
    from kplab.digits.store import load_model

    student, base, _ = load_model(model_dir, "digits-classifier")
    cfg = _build_config(preset, config_file, overrides, labels, seed, base=base)
    _setup(cfg)
    student.to(device_of(cfg)).train()
    _, _, rows = stage_teach(student, load_parts(data, cfg, cache), cfg, Path(out), "3 Mean Teacher")
    _echo_scores(rows[0], f"{out}/teacher")


def _echo_scores(row: dict, where) -> None:
    click.echo(f"{row['stage']}: val {row['acc_val']:.1f} %, I2DL test {row['acc_test100']:.1f} %, "
               f"full test {row['acc_test_full']:.2f} %, {row['wall_s']:.0f} s -> {where}")


@digits.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--data", required=True, help="The MNIST the model was trained on (rebuilds its split).")
@click.option("--cache", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_cmd(model_dir, data, cache, as_json):
    """Accuracy of a saved classifier on labeled val, the I2DL test (100) and the full test (10k)."""
    from kplab.digits.evaluate import scores
    from kplab.digits.run import device_of, load_parts
    from kplab.digits.store import load_model

    model, cfg, _ = load_model(model_dir, "digits-classifier")
    _setup(cfg)
    result = scores(model.to(device_of(cfg)), load_parts(data, cfg, cache))
    result["file_mb"] = round((Path(model_dir) / "model.safetensors").stat().st_size / 1e6, 3)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"val {result['acc_val']:.1f} %  I2DL test {result['acc_test100']:.1f} %  "
                   f"full test {result['acc_test_full']:.2f} %  params {result['params']:,}  file {result['file_mb']} MB")
