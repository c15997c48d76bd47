"""Stage 2: a classifier = encoder (pretrained or fresh) + new head, trained on the few labels.

AdamW with discriminative learning rates (encoder 1.5e-4, head 7.5e-4), the balanced sampler
(1,000 draws per epoch, batches of 32), strong aug + mixup + smoothed CE, gradient clipping at 5.
"""

from __future__ import annotations

import torch

from kplab.digits.dataset import Parts
from kplab.digits.evaluate import accuracy
from kplab.digits.model import Classifier
from kplab.digits.recipe import DigitsConfig
from kplab.digits.schedule import lr_factor, set_lr
from kplab.digits.supervised import epoch_batches, mixup_loss, prepare
from kplab.progress import bar, say


def param_groups(model: Classifier, encoder_lr: float, head_lr: float) -> list[dict]:
    """Two AdamW groups: the encoder's parameters at `encoder_lr`, the head's at `head_lr`."""
    return [{"params": list(model.encoder.parameters()), "lr": encoder_lr, "name": "encoder"},
            {"params": list(model.head.parameters()), "lr": head_lr, "name": "head"}]


def transfer(model: Classifier, parts: Parts, cfg: DigitsConfig, gen: torch.Generator) -> dict:
    """Fine-tune `model` in place; returns per-epoch history (train loss, labeled-val accuracy)."""
    t, sup = cfg.transfer, cfg.supervised
    opt = torch.optim.AdamW(param_groups(model, t.encoder_lr, t.head_lr), weight_decay=t.weight_decay)
    history: dict[str, list[float]] = {"train_loss": [], "val_acc": []}
    steps_per_epoch = -(-sup.samples_per_epoch // sup.batch_size)
    total, step = steps_per_epoch * t.epochs, 0
    model.train()
    for epoch in bar(range(t.epochs), desc="transfer"):
        running, seen = 0.0, 0
        for idx in epoch_batches(parts.y_train, sup, gen):
            set_lr(opt, lr_factor(t.schedule, step, total))
            x, perm, lam = prepare(parts.x_train[idx], sup, cfg.augment, True, gen)
            loss = mixup_loss(model(x), parts.y_train[idx], perm, lam, sup.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_norm)
            opt.step()
            running += loss.item() * len(idx)
            seen += len(idx)
            step += 1
        history["train_loss"].append(running / seen)
        history["val_acc"].append(accuracy(model, parts.x_val, parts.y_val))
    say(f"transfer: final train loss {history['train_loss'][-1]:.3f}, val {history['val_acc'][-1]:.1f} %")
    model.eval()
    return history
