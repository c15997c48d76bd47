"""Data-parallel plumbing for `torchrun`: process group, rank shares of a batch, global loss, synced BN.

`torchrun --nproc-per-node N -m kplab train ...` starts N copies of the same command with RANK,
LOCAL_RANK and WORLD_SIZE set; `start` joins them into one process group (NCCL on CUDA, gloo on the
CPU). Every rank walks the same seeded permutation and takes its own contiguous rows of each global
batch (`Ranks.share`), so one step of N ranks sees exactly the faces one step of a single process
sees. Alone (no torchrun, or WORLD_SIZE=1) everything here is the identity and nothing is
communicated, so single-process results stay bit for bit what they were.

KPLAB_ROWS_LOG=PREFIX makes each rank append the training-set rows of every step it trains on to
PREFIX.rank<R>.jsonl: an audit of the shares (the tests check them with it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kplab.errors import ConfigError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # this rank's device: "cuda:LOCAL_RANK" under torchrun on GPUs
    rows_log: str | None = None  # KPLAB_ROWS_LOG

    @property
    def main(self) -> bool:
        """Rank 0 evaluates, keeps the EMA, writes checkpoints and talks to the terminal."""
        return self.rank == 0

    def share(self, batch: int) -> slice:
        """This rank's rows of a global batch of `batch`: contiguous, disjoint, covering it. When
        `batch` does not divide by the world size the first `batch % world` ranks take one row more."""
        if batch < self.world:
            raise ConfigError(f"batch_size {batch} is smaller than the {self.world} ranks sharing it")
        base, extra = divmod(batch, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def seed(self, base: int) -> int:
        """A seed for draws each rank makes on its own (dropout): rank 0 alone keeps `base`."""
        return base * self.world + self.rank

    def log_rows(self, epoch: int, step: int, rows: torch.Tensor) -> None:
        """Append the rows this rank trains on at (epoch, step) to the KPLAB_ROWS_LOG file, if set."""
        if self.rows_log:
            with open(f"{self.rows_log}.rank{self.rank}.jsonl", "a") as f:
                f.write(json.dumps({"epoch": epoch, "step": step, "rows": rows.tolist()}) + "\n")


def is_main_process() -> bool:
    """Rank 0 or no torchrun at all; read from the environment, so valid before and after `start`."""
    return int(os.environ.get("RANK", "0")) == 0


def start(device: str) -> Ranks:
    """Join torchrun's process group when WORLD_SIZE > 1 (once per process); alone: Ranks(device=device)."""
    world, rows_log = int(os.environ.get("WORLD_SIZE", "1")), os.environ.get("KPLAB_ROWS_LOG") or None
    if world == 1:
        return Ranks(device=device, rows_log=rows_log)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Ranks(rank, world, device, rows_log)


def finish(ranks: Ranks) -> None:
    """Wait for every rank (rank 0 writes last) and leave the process group."""
    if ranks.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: nn.Module, ranks: Ranks, sync_batchnorm: bool) -> nn.Module:
    """The module to train: `model` itself when alone, else DDP around it (BN synchronised if asked).

    DDP hands rank 0's buffers (BN running statistics) to every rank at each forward: only rank 0's
    are ever evaluated or saved, and with synchronised BN every rank computes the same ones anyway."""
    if ranks.world == 1:
        return model
    if sync_batchnorm:
        _synchronise_batchnorm(model, ranks.device)
    device_ids = [torch.device(ranks.device).index] if ranks.device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=device_ids)


def as_global_mean(loss: torch.Tensor, mask: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Rescale this rank's masked mean `loss` so that DDP's gradient average is the gradient of the
    mean over the whole global batch: weight by this rank's share of the present keypoints (`mask`,
    (B, K)), which differs between ranks when labels have gaps or shares are uneven."""
    if ranks.world == 1:
        return loss
    local = mask.sum().to(torch.float64)
    total = local.clone()
    dist.all_reduce(total)
    return loss * (ranks.world * local.clamp(min=1) / total.clamp(min=1)).to(loss.dtype)


def mean(value: float, ranks: Ranks) -> float:
    """The mean of a number over all ranks (e.g. each rank's running training loss)."""
    if ranks.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ranks.device)
    dist.all_reduce(t)
    return float(t.item()) / ranks.world


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward sums the incoming gradients over ranks as well: every rank's
    loss depends on every rank's share of the sum."""

    @staticmethod
    def forward(ctx, tensor):
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch on every device (torch's
    SyncBatchNorm refuses CPU tensors). Two-pass mean and variance, each one all-reduce of (C,)
    sums; the sums' gradients are summed over ranks too, so gradients reach every rank's inputs as
    in one process. Same parameters and buffers as BatchNorm2d, so checkpoints do not change; in eval mode
    it is plain BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64)  # values per channel
        dist.all_reduce(count)  # ranks' shares may differ in size
        count = float(count.item())
        total = _SumOverRanks.apply(x.sum((0, 2, 3)))  # (C,)
        mean = total / count
        centred = x - mean[None, :, None, None]
        var = _SumOverRanks.apply(centred.square().sum((0, 2, 3))) / count  # (C,) biased, as BN normalises
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * count / max(count - 1, 1), m)
        scale = self.weight * torch.rsqrt(var + self.eps)  # (C,)
        return centred * scale[None, :, None, None] + self.bias[None, :, None, None]


def _synchronise_batchnorm(model: nn.Module, device: str) -> None:
    """Swap every BatchNorm2d for a synchronised one in place (weights and statistics kept)."""
    if device.startswith("cuda"):
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        assert converted is model, "the model's root is not itself a batch-norm layer"
        return
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is nn.BatchNorm2d:
                if child.momentum is None or not child.affine or not child.track_running_stats:
                    raise ConfigError("sync_batchnorm on the CPU supports affine BatchNorm2d with "
                                      "running statistics and a momentum")
                synced = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum)
                for key, value in [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]:
                    setattr(synced, key, value)  # the very tensors: the optimizer keeps tracking them
                synced.train(child.training)
                setattr(module, name, synced)
