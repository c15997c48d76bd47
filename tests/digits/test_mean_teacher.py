"""One Mean Teacher step of `teach` against the same step written out from the formula with PyTorch's
own AdamW, and the consistency gradient against its closed form.

    L = L_sup + w · mean((softmax(student(strong u)) - softmax(teacher(weak u)))²),   w = w_max (no ramp)

The inputs of the step (which unlabeled and labeled rows, their augmentations, mixup) are drawn from
the same seeded generator in the same order as `teach` draws them; the loss, the update and the EMA
are computed here independently.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from kplab.digits import augment
from kplab.digits.dataset import Parts
from kplab.digits.mean_teacher import consistency_loss, consistency_weight, teach
from kplab.digits.model import Classifier
from kplab.digits.recipe import DigitsConfig, ModelConfig, SupervisedConfig, TeachConfig
from kplab.digits.supervised import endless_batches, prepare

N_U, W_MAX = 64, 50.0


def tiny_setup():
    g = torch.Generator().manual_seed(0)

    def x(n):
        return torch.rand(n, 784, generator=g)

    y = torch.arange(20) % 10
    parts = Parts(x_train=x(20), y_train=y, x_val=x(10), y_val=y[:10], x_test100=x(10), y_test100=y[:10],
                  x_unlabeled=x(N_U), x_unlabeled_val=x(10), x_test=x(10), y_test=y[:10])
    cfg = DigitsConfig(model=ModelConfig(encoder_dims=(32, 16), head_dims=(16,)),
                       supervised=SupervisedConfig(samples_per_epoch=32),
                       teach=TeachConfig(lr=1e-3, epochs=1, unlabeled_batch=N_U, consistency=W_MAX, rampup_epochs=0))
    torch.manual_seed(1)
    return parts, cfg, Classifier(cfg.model)


def reference_step(student, parts, cfg, gen_seed, dropout_seed, consistency=True):
    """(student, teacher) after one step, computed from the formula (plus the pseudo-label term
    pseudo_weight · mean_u[1(max q ≥ τ) · CE(student(strong u), argmax q)] and the interpolation term
    when cfg.teach has them)."""
    student, teacher = copy.deepcopy(student), copy.deepcopy(student).eval()
    gen = torch.Generator().manual_seed(gen_seed)
    mt, sup = cfg.teach, cfg.supervised
    uidx = torch.randperm(N_U, generator=gen)[:mt.unlabeled_batch]
    lidx = next(endless_batches(parts.y_train, sup, gen))
    x_l, perm, lam = prepare(parts.x_train[lidx], sup, cfg.augment, mt.mixup, gen)
    u_strong = augment.strong(parts.x_unlabeled[uidx], cfg.augment, gen)
    u_weak = augment.weak(parts.x_unlabeled[uidx], cfg.augment, gen)
    opt = torch.optim.AdamW(student.parameters(), lr=mt.lr, weight_decay=mt.weight_decay)
    student.train()
    torch.manual_seed(dropout_seed)
    logits = student(torch.cat([x_l, u_strong]))
    y = parts.y_train[lidx]
    loss = (lam * F.cross_entropy(logits[:len(y)], y, label_smoothing=sup.label_smoothing)
            + (1 - lam) * F.cross_entropy(logits[:len(y)], y[perm], label_smoothing=sup.label_smoothing))
    with torch.no_grad():
        q = teacher(u_weak).softmax(1)
    if consistency:
        loss = loss + W_MAX * ((logits[len(y):].softmax(1) - q) ** 2).mean()
    if mt.pseudo_weight > 0:
        confident = q.max(1).values >= mt.pseudo_threshold
        ce = -logits[len(y):].log_softmax(1).gather(1, q.argmax(1, keepdim=True))[:, 0]  # (U,)
        loss = loss + mt.pseudo_weight * (ce * confident).sum() / len(ce)
    if mt.interpolation_weight > 0:  # λ ~ Beta(α, α) as a ratio of two Gamma(α) draws from the generator
        a = torch._standard_gamma(torch.full((2,), mt.interpolation_alpha), generator=gen)
        lam_u = float(a[0] / a.sum())
        pair = torch.randperm(len(u_weak), generator=gen)
        mixed = lam_u * u_weak + (1 - lam_u) * u_weak[pair]
        loss = loss + mt.interpolation_weight * W_MAX * (
            (student(mixed).softmax(1) - (lam_u * q + (1 - lam_u) * q[pair])) ** 2).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), mt.clip_norm)
    opt.step()
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.copy_(mt.ema_decay * t + (1 - mt.ema_decay) * s)
    return student, teacher


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_one_teach_step_is_the_formula_with_its_consistency_term():
    parts, cfg, student = tiny_setup()
    start = copy.deepcopy(student)
    torch.manual_seed(11)
    teacher, history = teach(student, parts, cfg, torch.Generator().manual_seed(7))
    assert len(history["cons_loss"]) == 1 and history["weight"] == [W_MAX]
    want_student, want_teacher = reference_step(start, parts, cfg, gen_seed=7, dropout_seed=11)
    torch.testing.assert_close(flat(student), flat(want_student), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat(teacher), flat(want_teacher), atol=1e-6, rtol=0)
    # The check has teeth: the same step without the consistency term lands far from it.
    no_cons, _ = reference_step(start, parts, cfg, gen_seed=7, dropout_seed=11, consistency=False)
    assert (flat(no_cons) - flat(want_student)).abs().max() > 100 * 1e-6


def test_consistency_gradient_is_the_softmax_jacobian_closed_form():
    # d/dz_i of mean_{b,c} (p_bc - q_bc)² with p = softmax(z): (2 / BC) p_i ((p_i - q_i) - sum_j p_j (p_j - q_j)).
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, 10, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 10, generator=g, dtype=torch.float64)
    consistency_loss(z, t).backward()
    p, q = z.detach().softmax(1), t.softmax(1)
    d = p - q
    expected = (2 / z.numel()) * p * (d - (p * d).sum(1, keepdim=True))
    torch.testing.assert_close(z.grad, expected, rtol=1e-10, atol=1e-14)
    assert expected.abs().max() > 1e-3  # a gradient worth checking


def beyond_setup():
    """tiny_setup with the pieces past the recipe on: elastic strong view, pseudo-labels at a threshold
    some rows of a briefly trained teacher pass and some do not."""
    parts, cfg, student = tiny_setup()
    cfg.augment.elastic_alpha = 34.0
    cfg.teach.pseudo_weight, cfg.teach.pseudo_threshold = 0.5, 0.95
    return parts, cfg, student


def test_one_teach_step_with_elastic_view_and_pseudo_labels_is_the_formula():
    parts, cfg, student = beyond_setup()
    with torch.no_grad():  # a teacher that is confident on some rows: sharpen the last layer
        student.head[-1].weight.mul_(40.0)
    start = copy.deepcopy(student)
    confidence = start.eval()(parts.x_unlabeled).softmax(1).max(1).values
    assert 0 < (confidence >= 0.95).sum() < N_U  # the threshold splits the batch
    torch.manual_seed(11)
    teacher, _ = teach(student, parts, cfg, torch.Generator().manual_seed(7))
    want_student, want_teacher = reference_step(start, parts, cfg, gen_seed=7, dropout_seed=11)
    torch.testing.assert_close(flat(student), flat(want_student), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat(teacher), flat(want_teacher), atol=1e-6, rtol=0)
    cfg.teach.pseudo_weight = 0.0  # the check has teeth: without the pseudo-label term it lands elsewhere
    without, _ = reference_step(start, parts, cfg, gen_seed=7, dropout_seed=11)
    assert (flat(without) - flat(want_student)).abs().max() > 100 * 1e-6


def test_one_teach_step_with_interpolation_consistency_is_the_formula():
    parts, cfg, student = tiny_setup()
    cfg.teach.interpolation_weight, cfg.teach.interpolation_alpha = 0.5, 0.7
    start = copy.deepcopy(student)
    torch.manual_seed(11)
    teacher, _ = teach(student, parts, cfg, torch.Generator().manual_seed(7))
    want_student, want_teacher = reference_step(start, parts, cfg, gen_seed=7, dropout_seed=11)
    torch.testing.assert_close(flat(student), flat(want_student), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat(teacher), flat(want_teacher), atol=1e-6, rtol=0)
    cfg.teach.interpolation_weight = 0.0  # the check has teeth: without the term it lands elsewhere
    without, _ = reference_step(start, parts, cfg, gen_seed=7, dropout_seed=11)
    assert (flat(without) - flat(want_student)).abs().max() > 100 * 1e-6


def test_teach_with_the_beyond_pieces_is_deterministic_for_a_seed():
    runs = []
    for seed in (5, 5, 6):
        parts, cfg, student = beyond_setup()
        cfg.teach.epochs, cfg.teach.interpolation_weight = 2, 1.0
        torch.manual_seed(seed)
        teacher, _ = teach(student, parts, cfg, torch.Generator().manual_seed(seed))
        runs.append(flat(teacher))
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_on_epoch_sees_each_epoch_and_leaves_the_run_unchanged():
    from kplab.digits.evaluate import accuracy

    finals, seen = [], []
    x, y = torch.rand(8, 784), torch.zeros(8, dtype=torch.long)
    for hook in (None, lambda epoch, teacher, student: seen.append((epoch, teacher.training, accuracy(teacher, x, y)))):
        parts, cfg, student = beyond_setup()
        cfg.teach.epochs = 3
        torch.manual_seed(5)
        teacher, _ = teach(student, parts, cfg, torch.Generator().manual_seed(5), on_epoch=hook)
        finals.append(flat(teacher))
    assert [e for e, _, _ in seen] == [1.0, 2.0, 3.0] and not any(training for _, training, _ in seen)
    assert torch.equal(finals[0], finals[1])


def test_history_is_the_per_epoch_mean_of_constant_losses_over_a_fractional_last_epoch():
    # Blank images stay blank under every augmentation and one class makes mixup a no-op, so with a frozen
    # dropout-free student (lr 0) each step's supervised loss is the same number c and the consistency is 0
    # (the teacher is the student's copy). 1.5 epochs of 4 steps: two history rows, the second over 2 steps.
    parts, cfg, _ = tiny_setup()
    blank = torch.zeros_like(parts.x_unlabeled)
    parts = Parts(**{**parts.__dict__, "x_train": torch.zeros_like(parts.x_train), "y_train": torch.full((20,), 3),
                     "x_unlabeled": blank})
    cfg.model = ModelConfig(encoder_dims=(32, 16), head_dims=(16,), encoder_dropout=0.0, head_dropout=0.0)
    cfg.teach = TeachConfig(lr=0.0, epochs=1.5, unlabeled_batch=N_U // 4, consistency=W_MAX, rampup_epochs=3.0,
                            schedule="cosine")
    torch.manual_seed(1)
    student = Classifier(cfg.model)
    with torch.no_grad():
        c = F.cross_entropy(student.eval()(parts.x_train[:1]), torch.tensor([3]),
                            label_smoothing=cfg.supervised.label_smoothing).item()
    seen = []
    teacher, history = teach(student, parts, cfg, torch.Generator().manual_seed(2),
                             on_epoch=lambda epoch, t, s: seen.append((epoch, s)))
    assert history["sup_loss"] == pytest.approx([c, c], rel=1e-6) and c > 0.5
    assert history["cons_loss"] == [0.0, 0.0]
    # w is taken at the start of each epoch's last step: steps 3 and 5 of 4 per epoch
    assert history["weight"] == pytest.approx([consistency_weight(3 / 4, W_MAX, 3.0),
                                               consistency_weight(5 / 4, W_MAX, 3.0)], rel=1e-12)
    assert [e for e, _ in seen] == [1.0, 1.5] and all(s is student for _, s in seen)
    torch.testing.assert_close(flat(teacher), flat(student), rtol=0, atol=0)


def test_consistency_weight_ramps_over_short_rampups_too():
    assert consistency_weight(0.25, 10.0, 0.5) == pytest.approx(10.0 * math.exp(-5 * 0.25))
    assert consistency_weight(0.0, 10.0, 0.0) == 10.0


def test_interpolation_off_adds_no_student_pass():
    # Off (weight 0), the term costs nothing: the student sees one batch of labeled + unlabeled rows a
    # step (and the val images at the epoch's end), never the mixed unlabeled batch alone.
    parts, cfg, student = tiny_setup()
    sizes = []
    # (the teacher is a deep copy and inherits the hook: count the student's own calls only)
    student.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0]))
                                  if module is student else None)
    teach(student, parts, cfg, torch.Generator().manual_seed(7))
    assert N_U not in sizes and len(sizes) == 2  # the step's batch, then val
    cfg.teach.interpolation_weight = 1.0  # on: a second pass over the mixed unlabeled batch
    sizes.clear()
    teach(student, parts, cfg, torch.Generator().manual_seed(7))
    assert sizes.count(N_U) == 1
