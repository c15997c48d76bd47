"""Every number of the exercise 8 #1 recipe, as dataclass defaults beside the reason for each.

`DigitsConfig()` *is* the recipe; `presets/digits.toml` restates it and `presets/digits-beyond.toml`
changes what our ablations found worth changing. `--set stage.field=value` reaches any field.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SplitConfig:
    """The I2DL split of the 60 k MNIST training images (10 per class in each labeled part)."""

    seed: int = 0  # fixed: the split is the task; `--seed` varies training, not which labels we get
    labeled_train: int = 100  # `--labels N`
    labeled_val: int = 100
    labeled_test: int = 100  # the I2DL score is accuracy on these 100 images
    unlabeled_val: int = 1000  # picks the best DAE epoch; everything left is unlabeled train


@dataclass
class ModelConfig:
    """Block = Linear -> LayerNorm -> GELU -> Dropout; the decoder mirrors the encoder."""

    input_dim: int = 784
    encoder_dims: tuple[int, ...] = (1024, 512, 128)  # last one is the code size
    encoder_dropout: float = 0.1  # every encoder block but the last
    head_dims: tuple[int, ...] = (256,)
    head_dropout: float = 0.2
    classes: int = 10


@dataclass
class AffineConfig:
    """RandomAffine ranges (torchvision semantics): angle ±degrees, shift ±translate·size, x-shear ±shear°."""

    degrees: float = 12.0
    translate: float = 0.10
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 5.0


@dataclass
class AugmentConfig:
    """Strong aug = affine + erasing (labeled images, student's unlabeled view); weak = small affine (teacher)."""

    strong: AffineConfig = field(default_factory=AffineConfig)
    erase_p: float = 0.15
    erase_scale: tuple[float, float] = (0.01, 0.06)  # erased area as a fraction of the image
    erase_ratio: tuple[float, float] = (0.3, 3.3)  # torchvision's default aspect range
    # Beyond the recipe (0 = off): Simard-style elastic distortion on top of the strong affine,
    # displacement = elastic_alpha x (uniform noise blurred by a Gaussian of elastic_sigma px).
    elastic_alpha: float = 0.0
    elastic_sigma: float = 4.0
    weak: AffineConfig = field(default_factory=lambda: AffineConfig(
        degrees=5.0, translate=0.04, scale=(0.97, 1.03), shear=0.0))


@dataclass
class PretrainConfig:
    """Stage 1: denoising autoencoder on the unlabeled images."""

    mask_rate: float = 0.2  # applied first: zero this fraction of pixels...
    noise_std: float = 0.15  # ...then add Gaussian noise to the whole image
    lr: float = 8e-4
    weight_decay: float = 1e-4  # Adam's L2 (not decoupled), as in the recipe
    schedule: str = "cosine"
    batch_size: int = 512
    epochs: int = 15


@dataclass
class SupervisedConfig:
    """The supervised term shared by stages 2 and 3: balanced sampler, smoothing, mixup, strong aug."""

    batch_size: int = 32
    samples_per_epoch: int = 1000  # WeightedRandomSampler(num_samples=1000, replacement=True)
    label_smoothing: float = 0.05
    mixup_alpha: float = 0.2  # 0 turns mixup off
    augment: bool = True


@dataclass
class TransferConfig:
    """Stage 2: the pretrained encoder plus a fresh head, fine-tuned on the few labels."""

    encoder_lr: float = 1.5e-4  # discriminative: the pretrained part moves 5x slower than the head
    head_lr: float = 7.5e-4
    weight_decay: float = 1e-4
    schedule: str = "constant"
    epochs: int = 50
    clip_norm: float = 5.0


@dataclass
class TeachConfig:
    """Stage 3: Mean Teacher; the teacher is an EMA of the student and is what we submit."""

    lr: float = 5e-5
    weight_decay: float = 1e-4
    schedule: str = "constant"
    epochs: float = 30.0  # one epoch = one pass over the unlabeled train set
    unlabeled_batch: int = 256
    ema_decay: float = 0.995
    consistency: float = 10.0  # w_max in w(t) = w_max * exp(-5 (1 - min(1, t/rampup))^2)
    rampup_epochs: float = 10.0
    clip_norm: float = 5.0
    mixup: bool = True  # mixup on the supervised term ("as in stage 2")
    # Beyond the recipe (0 = off): cross-entropy of the student's strong view against the teacher's
    # confident weak-view predictions (FixMatch-style pseudo-labels).
    pseudo_weight: float = 0.0
    pseudo_threshold: float = 0.95
    # Beyond the recipe (0 = off): interpolation consistency (ICT) on pairs of weak unlabeled views, the
    # student's output on their mixup pulled to the same mix of the teacher's outputs, at this multiple of w(t).
    interpolation_weight: float = 0.0
    interpolation_alpha: float = 1.0  # λ ~ Beta(α, α); 1 = uniform


@dataclass
class DigitsConfig:
    seed: int = 0  # training randomness (init, sampling, augmentation)
    threads: int = 2  # CPU threads; 2 keeps a shared 2-core machine usable
    device: str = "auto"  # auto = cuda when available, else cpu
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    teach: TeachConfig = field(default_factory=TeachConfig)
    compare_scratch: bool = False  # also take a fresh classifier through stages 2+3 (doubles stages 2-3; keeps `run` under 10 min when off)
    max_params: int = 5_000_000  # I2DL limits
    max_file_mb: float = 20.0
