"""Stage 3: Mean Teacher. The student learns by backprop; the teacher is its EMA and gets no gradients.

    L = L_sup + w(t) · L_cons
    L_cons = mse_loss(softmax(student(strong(u))), softmax(teacher(weak(u))))   (mean over batch and classes)
    w(t) = w_max · exp(-5 (1 - min(1, t / rampup))²),  t in (fractional) epochs
    teacher ← d · teacher + (1 - d) · student  after every optimizer step (d = 0.995)

Optional (off in the recipe): + pseudo_weight · mean_u[1(max p_teacher ≥ τ) · CE(student(strong(u)), argmax p_teacher)]
and interpolation consistency (ICT, Verma et al. 2019) on the teacher's weak views v = weak(u):
    + interpolation_weight · w(t) · mse_loss(softmax(student(λ·v + (1-λ)·v[perm])),
                                             λ·softmax(teacher(v)) + (1-λ)·softmax(teacher(v))[perm]),  λ ~ Beta(α, α)

One epoch is one pass over the unlabeled train set in batches of 256, each step paired with one
balanced labeled batch of 32 carrying the stage-2 supervised term. The teacher runs in eval mode.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from kplab.digits import augment
from kplab.digits.dataset import Parts
from kplab.digits.evaluate import accuracy
from kplab.digits.model import Classifier
from kplab.digits.recipe import DigitsConfig
from kplab.digits.schedule import lr_factor, set_lr
from kplab.digits.supervised import endless_batches, mix, mixup_loss, prepare
from kplab.progress import bar, say


def consistency_weight(t: float, w_max: float, rampup: float) -> float:
    """w(t) = w_max · exp(-5 (1 - min(1, t/rampup))²); rampup <= 0 means w_max from the start."""
    if rampup <= 0:
        return w_max
    return w_max * math.exp(-5.0 * (1.0 - min(1.0, t / rampup)) ** 2)


def make_teacher(student: Classifier) -> Classifier:
    """A copy of the student that no optimizer will ever see and autograd never tracks."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """teacher ← decay · teacher + (1 - decay) · student, parameter by parameter (buffers copied)."""
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    torch._foreach_lerp_(t_params, s_params, 1.0 - decay)
    for tb, sb in zip(teacher.buffers(), student.buffers()):
        tb.copy_(sb)


def consistency_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(student_logits.softmax(dim=1), teacher_logits.softmax(dim=1))


def pseudo_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Mean over the batch of CE against the teacher's argmax, counting only confident rows (others add 0)."""
    confidence, label = teacher_logits.softmax(dim=1).max(dim=1)  # (B,), (B,)
    per_row = F.cross_entropy(student_logits, label, reduction="none")  # (B,)
    return (per_row * (confidence >= threshold)).mean()


def interpolation_loss(student: Classifier, weak_views: torch.Tensor, teacher_logits: torch.Tensor, alpha: float,
                       gen: torch.Generator) -> torch.Tensor:
    """The student on a mixup of weak views against the same mixup of the teacher's probabilities."""
    mixed, perm, lam = mix(weak_views, alpha, gen)
    p = teacher_logits.softmax(dim=1)
    return F.mse_loss(student(mixed).softmax(dim=1), lam * p + (1 - lam) * p[perm])


def teach(student: Classifier, parts: Parts, cfg: DigitsConfig, gen: torch.Generator,
          on_epoch: Callable[[float, Classifier, Classifier], None] | None = None) -> tuple[Classifier, dict]:
    """Train `student` in place from its current weights; returns the teacher and per-epoch history.
    `on_epoch(epoch, teacher, student)` runs after each epoch (benches score curves with it; it must
    not touch the generator, or the run changes)."""
    mt, sup = cfg.teach, cfg.supervised
    teacher = make_teacher(student)
    opt = torch.optim.AdamW(student.parameters(), lr=mt.lr, weight_decay=mt.weight_decay)
    n_u = len(parts.x_unlabeled)
    steps_per_epoch = math.ceil(n_u / mt.unlabeled_batch)
    total = round(mt.epochs * steps_per_epoch)
    labeled = endless_batches(parts.y_train, sup, gen)
    keys = ("sup_loss", "cons_loss", "weight", "teacher_val_acc", "student_val_acc")
    history: dict[str, list[float]] = {k: [] for k in keys}
    sums = {"sup_loss": 0.0, "cons_loss": 0.0}
    student.train()
    progress = bar(desc="mean teacher", total=total)
    step = 0
    while step < total:
        for uidx in torch.randperm(n_u, generator=gen).split(mt.unlabeled_batch):
            if step >= total:
                break
            set_lr(opt, lr_factor(mt.schedule, step, total))
            w = consistency_weight(step / steps_per_epoch, mt.consistency, mt.rampup_epochs)
            lidx = next(labeled)
            x_l, perm, lam = prepare(parts.x_train[lidx], sup, cfg.augment, mt.mixup, gen)  # (32, 784)
            u = parts.x_unlabeled[uidx]  # (256, 784)
            logits = student(torch.cat([x_l, augment.strong(u, cfg.augment, gen)]))  # (288, 10)
            weak = augment.weak(u, cfg.augment, gen)  # (256, 784)
            with torch.no_grad():
                target = teacher(weak)  # (256, 10)
            l_sup = mixup_loss(logits[: len(lidx)], parts.y_train[lidx], perm, lam, sup.label_smoothing)
            l_cons = consistency_loss(logits[len(lidx):], target)
            loss = l_sup + w * l_cons
            if mt.pseudo_weight > 0:
                loss = loss + mt.pseudo_weight * pseudo_label_loss(logits[len(lidx):], target, mt.pseudo_threshold)
            if mt.interpolation_weight > 0:
                loss = loss + mt.interpolation_weight * w * interpolation_loss(
                    student, weak, target, mt.interpolation_alpha, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), mt.clip_norm)
            opt.step()
            ema_update(teacher, student, mt.ema_decay)
            sums["sup_loss"] += l_sup.item()
            sums["cons_loss"] += l_cons.item()
            step += 1
            progress.update(1)
            if step % steps_per_epoch == 0 or step == total:
                done = step % steps_per_epoch or steps_per_epoch
                history["sup_loss"].append(sums["sup_loss"] / done)
                history["cons_loss"].append(sums["cons_loss"] / done)
                history["weight"].append(w)
                history["teacher_val_acc"].append(accuracy(teacher, parts.x_val, parts.y_val))
                history["student_val_acc"].append(accuracy(student, parts.x_val, parts.y_val))
                sums = {"sup_loss": 0.0, "cons_loss": 0.0}
                progress.set_postfix(teacher_val=history["teacher_val_acc"][-1], w=f"{w:.2f}")
                if on_epoch is not None:
                    on_epoch(step / steps_per_epoch, teacher, student)
    progress.close()
    say(f"mean teacher: teacher val {history['teacher_val_acc'][-1]:.1f} %, "
        f"student val {history['student_val_acc'][-1]:.1f} %")
    student.eval()
    return teacher, history
