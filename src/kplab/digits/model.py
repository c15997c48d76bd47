"""The fully connected networks of the recipe: encoder, mirrored decoder, classifier head.

Block = Linear -> LayerNorm -> GELU -> Dropout. With the defaults:
  encoder    784 -> 1024 -> 512 -> 128   (dropout 0.1, none after the last block)
  decoder    128 -> 512 -> 1024 -> 784 logits (sigmoid gives the image; BCE-with-logits trains it)
  classifier encoder -> block 128 -> 256 (dropout 0.2) -> Linear 256 -> 10
The classifier has 1,433,738 parameters (the I2DL limit is 5 M).
"""

from __future__ import annotations

import torch
from torch import nn

from kplab.digits.recipe import ModelConfig


def block(n_in: int, n_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.GELU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def encoder(cfg: ModelConfig) -> nn.Sequential:
    dims = (cfg.input_dim, *cfg.encoder_dims)
    last = len(dims) - 2
    return nn.Sequential(*(block(a, b, 0.0 if i == last else cfg.encoder_dropout)
                           for i, (a, b) in enumerate(zip(dims, dims[1:]))))


def decoder(cfg: ModelConfig) -> nn.Sequential:
    """Mirror of the encoder without dropout; the last layer is a plain Linear giving pixel logits."""
    dims = tuple(reversed(cfg.encoder_dims))
    hidden = [block(a, b, 0.0) for a, b in zip(dims, dims[1:])]
    return nn.Sequential(*hidden, nn.Linear(dims[-1], cfg.input_dim))


class Autoencoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.encoder = encoder(cfg)
        self.decoder = decoder(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel logits (N, 784); `torch.sigmoid` of them is the reconstruction."""
        return self.decoder(self.encoder(x))


class Classifier(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.encoder = encoder(cfg)
        dims = (cfg.encoder_dims[-1], *cfg.head_dims)
        self.head = nn.Sequential(*(block(a, b, cfg.head_dropout) for a, b in zip(dims, dims[1:])),
                                  nn.Linear(dims[-1], cfg.classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))  # (N, 10) logits


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
