"""`kplab pack`: option parsing and wiring only (the format is in packed.py)."""

from __future__ import annotations

import click


@click.command(context_settings={"show_default": True})
@click.argument("data")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="new folder to write")
def pack(data, out):
    """Write DATA (I2DL folder, Kaggle CSV, .npz or synthetic[:N]) as a packed folder that training
    reads by memory mapping (`kplab train --data OUT`), so a set bigger than memory trains with flat
    memory.

    Every split of DATA is kept; a source without splits is packed as the train/val hold-out that
    `kplab train --data DATA` would make of it, so training on either gives the same model."""
    from kplab.faces.training.data import available_splits, read_faces, read_train_val
    from kplab.faces.training.packed import write_packed
    from kplab.progress import say

    splits = available_splits(data)
    if splits:
        parts = {split: read_faces(data, split) for split in splits}
    else:
        parts = dict(zip(("train", "val"), read_train_val(data)))
    write_packed(out, parts)
    counts = ", ".join(f"{len(faces)} {split}" for split, faces in parts.items())
    say(f"packed {sum(len(f) for f in parts.values())} faces ({counts}) into {out}")
