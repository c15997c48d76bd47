"""Single-file training states: tensors and metadata are replaced together, and damage is reported."""

import pytest
import torch

from kplab.checkpoint import load_state, save_state
from kplab.errors import CheckpointError


def test_a_state_round_trips_tensors_and_metadata_in_one_file(tmp_path):
    path = tmp_path / "state" / "train.safetensors"
    tensors = {"model.w": torch.arange(6.0).view(2, 3), "optim.0.step": torch.tensor(7)}
    save_state(path, tensors, {"epoch": 3, "history": [{"val_score": 1.5}]})
    again, meta = load_state(path)
    assert meta == {"epoch": 3, "history": [{"val_score": 1.5}]}
    assert again.keys() == tensors.keys() and all(torch.equal(again[k], tensors[k]) for k in tensors)
    assert [p.name for p in path.parent.iterdir()] == ["train.safetensors"]  # no second file to fall out of step
    save_state(path, {"model.w": torch.zeros(1)}, {"epoch": 4})
    assert load_state(path)[1] == {"epoch": 4}


def test_a_damaged_or_foreign_state_names_the_file(tmp_path):
    path = tmp_path / "train.safetensors"
    save_state(path, {"w": torch.ones(3)}, {"epoch": 0})
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="train.safetensors: not a kplab training state"):
        load_state(path)
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(path))  # a safetensors file without kplab metadata
    with pytest.raises(CheckpointError, match="not a kplab training state"):
        load_state(path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_state(tmp_path / "missing.safetensors")
