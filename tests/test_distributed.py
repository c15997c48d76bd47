"""distributed.py without a process group: the rank shares of a batch, and the augmenter drawing for a
whole batch while augmenting one share of it (what makes two ranks augment like one process)."""

import pytest
import torch

from kplab.distributed import Ranks
from kplab.errors import ConfigError
from kplab.faces.training.augment import AugmentConfig, Augmenter
from kplab.faces.training.evaluate import to_tensors
from kplab.faces.training.layout import KAGGLE15
from kplab.faces.training.synthetic import synthetic_faces


@pytest.mark.parametrize("batch,world", [(16, 2), (32, 3), (7, 4), (5, 5)])
def test_shares_are_contiguous_disjoint_and_cover_the_batch(batch, world):
    rows = [list(range(batch))[Ranks(r, world).share(batch)] for r in range(world)]
    assert sum(rows, []) == list(range(batch))  # in order, nothing twice, nothing left out
    assert max(map(len, rows)) - min(map(len, rows)) <= 1  # the first batch % world ranks take one more
    assert Ranks().share(batch) == slice(0, batch)


def test_a_batch_smaller_than_the_world_is_refused():
    with pytest.raises(ConfigError, match="batch_size 3 is smaller than the 4 ranks"):
        Ranks(0, 4).share(3)


def test_augmenting_a_share_equals_that_share_of_the_whole_batch():
    images, points, mask = to_tensors(synthetic_faces(12, seed=0))
    augmenter = Augmenter(AugmentConfig(blur=0.5, cutout=0.5), KAGGLE15)
    whole = augmenter(images, points, mask, torch.Generator().manual_seed(5))
    for share in (Ranks(0, 3).share(12), Ranks(1, 3).share(12), Ranks(2, 3).share(12), slice(5, 12)):
        part = augmenter(images[share], points[share], mask[share], torch.Generator().manual_seed(5),
                         share=share, batch=12)
        for got, want in zip(part, whole):
            assert torch.equal(got, want[share])
