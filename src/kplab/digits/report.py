"""What `run` shows: the per-stage table, a reconstruction grid and training curves (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import torch

COLUMNS = (("stage", "stage"), ("acc_val", "val % (100)"), ("acc_test100", "I2DL test % (100)"),
           ("acc_test_full", "full test % (10k)"), ("wall_s", "wall s"), ("note", "note"))


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """A Markdown table with one line per stage."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def _figure(rows: int, cols: int, size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(rows, cols, figsize=size, squeeze=False)


def reconstruction_grid(clean: torch.Tensor, noisy: torch.Tensor, recon: torch.Tensor, path: str | Path) -> Path:
    """Three rows (clean / corrupted / reconstructed) of the same images; inputs (K, 784)."""
    k = len(clean)
    plt, fig, axes = _figure(3, k, (1.1 * k, 3.6))
    for r, (title, images) in enumerate((("clean", clean), ("corrupted", noisy), ("reconstructed", recon))):
        for c in range(k):
            ax = axes[r][c]
            ax.imshow(images[c].reshape(28, 28).clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def curves(histories: dict[str, dict], path: str | Path) -> Path:
    """One panel per stage: DAE BCE; transfer loss and val accuracy; Mean Teacher losses and accuracies."""
    plt, fig, axes = _figure(1, 3, (15, 4))
    dae, tr, mt = (histories.get(k) for k in ("pretrain", "transfer", "teach"))
    ax = axes[0][0]
    if dae:
        epochs = range(1, len(dae["train_loss"]) + 1)
        ax.plot(epochs, dae["train_loss"], ".-", label="train (corrupted input)")
        ax.plot(epochs, dae["val_loss"], ".-", label="unlabeled val")
        ax.legend()
    ax.set(title="stage 1: DAE reconstruction BCE", xlabel="epoch")
    for ax, hist, title, loss_keys, acc_keys in (
        (axes[0][1], tr, "stage 2: transfer", ("train_loss",), ("val_acc",)),
        (axes[0][2], mt, "stage 3: Mean Teacher", ("sup_loss", "cons_loss"), ("teacher_val_acc", "student_val_acc")),
    ):
        ax.set(title=title, xlabel="epoch", ylabel="loss")
        if not hist:
            continue
        for i, key in enumerate(loss_keys):
            ax.plot(range(1, len(hist[key]) + 1), hist[key], ".-", color=f"C{i}", label=key)
        ax.set_yscale("log")
        ax.legend(loc="upper left")
        acc = ax.twinx()
        for i, key in enumerate(acc_keys):  # colours after the loss lines', so no two lines share one
            acc.plot(range(1, len(hist[key]) + 1), hist[key], ".--", color=f"C{i + 2}", label=key)
        acc.set_ylabel("labeled val accuracy %")
        acc.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
