"""The recipe's numbers and identities, each checked against an independent formula or PyTorch."""

import math

import pytest
import torch
import torch.nn.functional as F

from kplab.config import load_config
from kplab.digits.mean_teacher import consistency_loss, consistency_weight, ema_update, make_teacher
from kplab.digits.model import Autoencoder, Classifier, count_params
from kplab.digits.recipe import DigitsConfig, ModelConfig
from kplab.digits.schedule import lr_factor, set_lr
from kplab.digits.supervised import balanced_sampler, epoch_batches, mix, mixup_loss
from kplab.digits.transfer import param_groups


def test_defaults_are_the_recipe_and_the_preset_restates_them():
    cfg = DigitsConfig()
    assert (cfg.pretrain.mask_rate, cfg.pretrain.noise_std, cfg.pretrain.lr, cfg.pretrain.weight_decay,
            cfg.pretrain.batch_size, cfg.pretrain.epochs, cfg.pretrain.schedule) == (0.2, 0.15, 8e-4, 1e-4, 512, 15, "cosine")
    assert (cfg.transfer.encoder_lr, cfg.transfer.head_lr, cfg.transfer.weight_decay, cfg.transfer.epochs,
            cfg.transfer.clip_norm) == (1.5e-4, 7.5e-4, 1e-4, 50, 5.0)
    assert (cfg.supervised.batch_size, cfg.supervised.samples_per_epoch, cfg.supervised.label_smoothing,
            cfg.supervised.mixup_alpha) == (32, 1000, 0.05, 0.2)
    assert (cfg.teach.lr, cfg.teach.epochs, cfg.teach.unlabeled_batch, cfg.teach.ema_decay,
            cfg.teach.consistency, cfg.teach.rampup_epochs) == (5e-5, 30, 256, 0.995, 10.0, 10.0)
    s, w = cfg.augment.strong, cfg.augment.weak
    assert (s.degrees, s.translate, s.scale, s.shear, cfg.augment.erase_p, cfg.augment.erase_scale) == \
        (12.0, 0.1, (0.9, 1.1), 5.0, 0.15, (0.01, 0.06))
    assert (w.degrees, w.translate, w.scale, w.shear) == (5.0, 0.04, (0.97, 1.03), 0.0)
    assert load_config(DigitsConfig, preset="digits") == cfg
    assert (cfg.augment.elastic_alpha, cfg.teach.pseudo_weight, cfg.teach.schedule) == (0.0, 0.0, "constant")
    assert cfg.teach.interpolation_weight == 0.0


def test_best_is_beyond_plus_elastic_and_the_long_cosine_stage_three():
    beyond = load_config(DigitsConfig, preset="digits-beyond")
    assert beyond == load_config(DigitsConfig, overrides=["teach.consistency=100"])
    best = load_config(DigitsConfig, preset="digits-best")
    assert best == load_config(DigitsConfig, preset="digits-beyond", overrides=[
        "augment.elastic_alpha=34", "augment.elastic_sigma=4", "teach.epochs=60", "teach.lr=2e-4",
        "teach.schedule=cosine"])


def test_parameter_count_matches_the_layer_formula():
    def linear(a, b):
        return a * b + b

    def block(a, b):
        return linear(a, b) + 2 * b  # + LayerNorm weight and bias

    encoder = block(784, 1024) + block(1024, 512) + block(512, 128)
    head = block(128, 256) + linear(256, 10)
    assert count_params(Classifier(ModelConfig())) == encoder + head == 1_433_738
    decoder = block(128, 512) + block(512, 1024) + linear(1024, 784)
    assert count_params(Autoencoder(ModelConfig())) == encoder + decoder


def test_model_layout_dropout_where_the_recipe_says():
    model = Classifier(ModelConfig())
    drops = [m.p for m in model.encoder.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.1, 0.1]  # not after the last encoder block
    assert [m.p for m in model.head.modules() if isinstance(m, torch.nn.Dropout)] == [0.2]
    assert not any(isinstance(m, torch.nn.Dropout) for m in Autoencoder(ModelConfig()).decoder.modules())
    assert all(isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.GELU, torch.nn.Dropout,
                              torch.nn.Sequential, Classifier)) for m in model.modules())  # fully connected


def test_balanced_sampler_draws_classes_equally_from_imbalanced_labels():
    labels = torch.cat([torch.full((c + 1,) if c else (40,), c) for c in range(10)])  # 40 zeros, 2 ones, ...
    sampler = balanced_sampler(labels, 50_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[torch.tensor(list(sampler))], minlength=10).double()
    # Each class ~ Binomial(50000, 0.1): sd 67, so ±400 is ~6 sd.
    assert (counts - 5000).abs().max() < 400
    assert sampler.replacement and sampler.num_samples == 50_000


def test_epoch_batches_are_the_recipe_sizes():
    from kplab.digits.recipe import SupervisedConfig

    batches = epoch_batches(torch.arange(100) % 10, SupervisedConfig(), torch.Generator().manual_seed(0))
    assert sum(len(b) for b in batches) == 1000 and {len(b) for b in batches[:-1]} == {32}


def smoothed_onehot(y, classes, eps):
    return F.one_hot(y, classes).double() * (1 - eps) + eps / classes


def test_label_smoothing_value_and_mixup_identity():
    torch.manual_seed(0)
    logits = torch.randn(16, 10, dtype=torch.float64)
    y = torch.randint(0, 10, (16,))
    perm = torch.randperm(16)
    lam, eps = 0.3, DigitsConfig().supervised.label_smoothing
    logp = logits.log_softmax(1)
    # Smoothed CE with ε = 0.05: the target puts 1 - ε + ε/10 on the label and ε/10 elsewhere.
    soft = lam * smoothed_onehot(y, 10, eps) + (1 - lam) * smoothed_onehot(y[perm], 10, eps)
    expected = -(soft * logp).sum(1).mean()
    torch.testing.assert_close(mixup_loss(logits, y, perm, lam, eps), expected)
    assert eps == 0.05
    torch.testing.assert_close(mixup_loss(logits, y, perm, 1.0, eps),
                               -(smoothed_onehot(y, 10, eps) * logp).sum(1).mean())


def test_mix_draws_beta_lambda_and_mixes_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5)
    lams = []
    for _ in range(4000):
        mixed, perm, lam = mix(x, 0.2, g)
        lams.append(lam)
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[perm])
    lams = torch.tensor(lams)
    # Beta(0.2, 0.2): mean 1/2, variance αβ/((α+β)²(α+β+1)) = 0.04/(0.16·1.4) = 0.1786.
    assert lams.mean().item() == pytest.approx(0.5, abs=0.03)
    assert lams.var().item() == pytest.approx(0.1786, abs=0.01)
    assert mix(x, 0.0, g)[2] == 1.0


def test_consistency_weight_ramp():
    assert consistency_weight(0, 10, 10) == pytest.approx(10 * math.exp(-5))
    assert consistency_weight(10, 10, 10) == consistency_weight(30, 10, 10) == 10
    assert consistency_weight(5, 10, 10) == pytest.approx(10 * math.exp(-5 * 0.25))


def test_consistency_loss_is_mean_squared_softmax_difference():
    a, b = torch.randn(4, 10), torch.randn(4, 10)
    expected = ((a.softmax(1) - b.softmax(1)) ** 2).sum() / 40
    torch.testing.assert_close(consistency_loss(a, b), expected)


def test_teacher_is_the_ema_and_gets_no_gradients():
    torch.manual_seed(0)
    cfg = ModelConfig(encoder_dims=(16, 8), head_dims=(8,))
    student = Classifier(cfg)
    teacher = make_teacher(student)
    reference = [p.detach().clone() for p in student.parameters()]
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    decay = 0.9
    for _ in range(3):
        loss = student(torch.randn(4, 784)).square().mean() + teacher(torch.randn(4, 784)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema_update(teacher, student, decay)
        reference = [decay * r + (1 - decay) * s.detach() for r, s in zip(reference, student.parameters())]
    for t, r in zip(teacher.parameters(), reference):
        torch.testing.assert_close(t, r)
        assert t.grad is None and not t.requires_grad
    assert not teacher.training


def test_discriminative_learning_rates_land_in_the_right_groups():
    model = Classifier(ModelConfig())
    groups = param_groups(model, 1.5e-4, 7.5e-4)
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    by_id = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert all(by_id[id(p)] == 1.5e-4 for p in model.encoder.parameters())
    assert all(by_id[id(p)] == 7.5e-4 for p in model.head.parameters())
    assert len(by_id) == len(list(model.parameters()))
    set_lr(opt, 0.5)  # schedules scale each group's own rate
    assert [g["lr"] for g in opt.param_groups] == [0.75e-4, 3.75e-4]


def test_cosine_schedule():
    assert lr_factor("cosine", 0, 100) == 1.0
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 100, 100) == pytest.approx(0.0)
    assert lr_factor("constant", 77, 100) == 1.0


def test_pseudo_label_loss_counts_only_confident_rows():
    from kplab.digits.mean_teacher import pseudo_label_loss

    student = torch.randn(3, 10)
    teacher = torch.zeros(3, 10)
    teacher[0, 4] = 20.0  # confident: class 4
    teacher[2, 7] = 20.0  # confident: class 7; row 1 is uniform (10 %) and must not count
    expected = (F.cross_entropy(student[0:1], torch.tensor([4])) + F.cross_entropy(student[2:3], torch.tensor([7]))) / 3
    torch.testing.assert_close(pseudo_label_loss(student, teacher, 0.95), expected)


def test_pseudo_label_threshold_is_inclusive_and_exact():
    from kplab.digits.mean_teacher import pseudo_label_loss

    teacher = torch.zeros(1, 10)
    teacher[0, 2] = 3.0  # max probability e^3 / (e^3 + 9)
    confidence = (math.exp(3) / (math.exp(3) + 9))
    student = torch.randn(1, 10)
    ce = F.cross_entropy(student, torch.tensor([2]))
    torch.testing.assert_close(pseudo_label_loss(student, teacher, confidence - 1e-6), ce)
    assert pseudo_label_loss(student, teacher, confidence + 1e-6).item() == 0.0
    exact = teacher.softmax(1).max().item()  # a row exactly at the threshold counts
    torch.testing.assert_close(pseudo_label_loss(student, teacher, exact), ce)
