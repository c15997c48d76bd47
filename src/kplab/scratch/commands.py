"""`kplab fundamentals ...`: the convolution-fundamentals demonstrations. Wiring and printing only;
the work is in kplab.scratch.demos (imported inside each command so `kplab --help` stays fast)."""

from __future__ import annotations

from pathlib import Path

import click

OUT = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/fundamentals"),
                   show_default=True, help="Folder for the figure / table.")


def table(headers: list[str], rows: list[list]) -> str:
    """Plain aligned text table: text columns left, numbers right."""
    cells = [[str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) for i in range(len(headers))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return text == "-"


def _out_dir(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return out


@click.group()
def fundamentals():
    """Convolution fundamentals from scratch (NumPy): filters, weight counts, dropout, norms."""


@fundamentals.command()
@click.argument("image", required=False, type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, help="Noise seed of the test pattern used when no IMAGE is given.")
@OUT
def filters(image: Path | None, seed: int, out: Path):
    """Apply hand-coded 3x3/5x5 filters with our conv2d to IMAGE (default: a test pattern of shapes)."""
    from kplab.scratch.demos import filters_demo, load_grey, test_pattern

    picture = load_grey(image) if image is not None else test_pattern(seed)
    source = str(image) if image is not None else f"test pattern (seed {seed})"
    stats, path = filters_demo(picture, _out_dir(out))
    click.echo(f"image: {source}, {picture.shape[0]}x{picture.shape[1]} grey, values in [0, 1]")
    rows = [[s.name, s.size, "-" if s.kernel_sum is None else f"{s.kernel_sum:.6f}",
             f"{s.minimum:.6f}", f"{s.maximum:.6f}", f"{s.mean:.6f}"] for s in stats]
    click.echo(table(["filter", "kernel", "kernel sum", "out min", "out max", "out mean"], rows))
    click.echo(f"figure: {path}")


@fundamentals.command()
@click.option("--input", "input_shape", default=None, metavar="HxWxC", help="Also count for this input, e.g. 64x64x3.")
@click.option("--kernel", default=5, show_default=True, help="Filter size k (k x k x C) for --input.")
@click.option("--filters", "n_filters", default=1, show_default=True, help="Number of filters for --input.")
@click.option("--stride", default=1, show_default=True)
@click.option("--padding", default=0, show_default=True)
@click.option("--hidden", default=None, type=int, help="Also count a fully connected layer to this many units.")
@OUT
def params(input_shape: str | None, kernel: int, n_filters: int, stride: int, padding: int, hidden: int | None,
           out: Path):
    """Weights of a convolution vs a fully connected layer (the tutorial's example, plus your sizes)."""
    from kplab.errors import ConfigError
    from kplab.scratch.demos import write_counts
    from kplab.scratch.weights import custom_counts, tutorial_counts

    rows = tutorial_counts()
    if input_shape is not None:
        try:
            h, w, c = (int(v) for v in input_shape.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--input must look like HxWxC (e.g. 64x64x3), got {input_shape!r}") from None
        if min(h, w, c, kernel, n_filters, stride) < 1 or padding < 0:
            raise ConfigError("--input sizes, --kernel, --filters and --stride must be >= 1, --padding >= 0")
        try:
            rows += custom_counts(h, w, c, kernel, n_filters, stride, padding, hidden)
        except ValueError as e:
            raise ConfigError(f"--kernel {kernel} does not fit --input {input_shape} with --padding {padding}: "
                              f"{e}") from None
    path = write_counts(rows, _out_dir(out))
    click.echo(table(["layer", "input", "output", "weights", "biases", "parameters"],
                     [[r.layer, r.input, r.output, f"{r.weights:,}", f"{r.biases:,}", f"{r.parameters:,}"]
                      for r in rows]))
    click.echo(f"table: {path}")


@fundamentals.command()
@click.option("--samples", default=10000, show_default=True, help="Inputs per layer for the measured drop fraction.")
@click.option("--seed", default=0, show_default=True)
@OUT
def dropout(samples: int, seed: int, out: Path):
    """Dropout(p=0.5) on 1x75 and Dropout2d(p=0.5) on 1x3x25, ours and PyTorch's side by side."""
    from kplab.scratch.demos import dropout_demo

    runs, path = dropout_demo(samples, seed, _out_dir(out))
    for r in runs:
        click.echo(f"{r.source} {r.layer}(p=0.5) on ones{(1, *r.example.shape)}:")
        for row in r.example.reshape(-1, 25):
            click.echo("  " + " ".join(f"{v:g}" for v in row))
    click.echo(table(["layer", "source", "samples", "drop fraction", "whole maps"],
                     [[r.layer, r.source, samples, f"{r.drop_fraction:.4f}",
                       "-" if r.whole_maps is None else f"{r.whole_maps:.4f}"] for r in runs]))
    click.echo(f"figure: {path}")


@fundamentals.command()
@click.option("--shape", default="8x6x4x4", show_default=True, metavar="NxCxHxW", help="Batch shape.")
@click.option("--groups", default=3, show_default=True, help="GroupNorm groups (must divide C).")
@click.option("--seed", default=0, show_default=True)
@OUT
def norms(shape: str, groups: int, seed: int, out: Path):
    """Mean ~ 0 and variance ~ 1 per normalised group after batch, layer, instance and group norm."""
    from kplab.errors import ConfigError
    from kplab.scratch.demos import norms_demo

    try:
        dims = tuple(int(v) for v in shape.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1 or dims[0] * dims[2] * dims[3] < 2 or dims[2] * dims[3] < 2:
        raise ConfigError(f"--shape must be NxCxHxW with N*H*W >= 2 and H*W >= 2, got {shape!r}")
    if groups < 1 or dims[1] % groups:
        raise ConfigError(f"--groups must be >= 1 and divide the channel count {dims[1]}, got {groups}")
    folder = _out_dir(out)
    stats, path = norms_demo(dims, groups, seed, folder)
    click.echo(f"batch: {folder / 'norms_batch.npy'} shape {dims}")
    click.echo(table(["norm", "statistics over", "groups", "group size", "max |mean|", "min var", "max var"],
                     [[s.name, s.axes, s.groups, s.group_size, f"{s.max_abs_mean:.2e}", f"{s.min_var:.6f}",
                       f"{s.max_var:.6f}"] for s in stats]))
    click.echo(f"figure: {path}")
