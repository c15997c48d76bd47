"""checkpoint.py on real files: the safetensors + JSON pair, its checksum, atomic writes, clear errors."""

import hashlib
import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from kplab import checkpoint
from kplab.errors import CheckpointError


def tensors():
    return {"w": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.tensor([1.5, -2.0])}


def test_save_writes_the_pair_with_the_weights_checksum_and_load_returns_both(tmp_path):
    path = checkpoint.save(tmp_path / "run", tensors(), {"epoch": 3, "names": ["a", "b"]}, name="state")
    assert path == tmp_path / "run" / "state.safetensors"
    meta = json.loads((tmp_path / "run" / "state.json").read_text())
    assert meta == {"epoch": 3, "names": ["a", "b"], "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    on_disk = load_file(path)  # plain safetensors, readable by anyone
    assert torch.equal(on_disk["w"], tensors()["w"]) and torch.equal(on_disk["b"], tensors()["b"])
    loaded, meta = checkpoint.load(tmp_path / "run", "state")
    assert meta == {"epoch": 3, "names": ["a", "b"]}  # the checksum is checked, then dropped
    assert loaded.keys() == {"w", "b"} and all(torch.equal(loaded[k], tensors()[k]) for k in loaded)
    assert checkpoint.read_meta(tmp_path / "run", "state")["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_non_contiguous_tensors_are_saved(tmp_path):
    t = torch.arange(12.0).view(3, 4).t()  # (4, 3), not contiguous
    checkpoint.save(tmp_path, {"t": t}, {})
    assert torch.equal(checkpoint.load(tmp_path)[0]["t"], t)


def test_files_are_world_readable_and_leave_no_temporaries(tmp_path):
    checkpoint.save(tmp_path, tensors(), {"a": 1})
    checkpoint.atomic_write_json(tmp_path / "deep" / "er" / "m.json", {"x": [1, 2]})
    for name in ("model.safetensors", "model.json", "deep/er/m.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    assert json.loads((tmp_path / "deep" / "er" / "m.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "deep" / "er" / "m.json").read_text().endswith("}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "model.json", "model.safetensors"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "m.json"
    checkpoint.atomic_write_json(target, {"old": True})

    with pytest.raises(TypeError):
        checkpoint.atomic_write_bytes(target, "text, not bytes")  # fails inside the write
    with pytest.raises(TypeError):
        checkpoint.atomic_write_json(target, {"not json": object()})
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_missing_files_and_bad_json_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not found \(is .* a kplab model directory\?\)"):
        checkpoint.load(tmp_path)
    with pytest.raises(CheckpointError, match=r"model\.json: not found"):
        checkpoint.read_meta(tmp_path)
    checkpoint.save(tmp_path, tensors(), {})
    (tmp_path / "model.json").unlink()
    with pytest.raises(CheckpointError, match=r"model\.json: not found"):
        checkpoint.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"model\.json: not valid JSON"):
        checkpoint.load(tmp_path)
    (tmp_path / "model.json").write_bytes(b"\xff\xfe")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.read_meta(tmp_path)


def test_a_half_replaced_pair_is_detected(tmp_path):
    checkpoint.save(tmp_path / "a", tensors(), {"run": "a"})
    checkpoint.save(tmp_path / "b", {"w": torch.zeros(2)}, {"run": "b"})
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"model\.safetensors: does not match model\.json \(checksum differs\); "
                                              r"the pair was not written together$"):
        checkpoint.load(tmp_path / "a")


def test_corrupt_weights_are_named(tmp_path):
    checkpoint.save(tmp_path, tensors(), {})
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["weights_sha256"]  # a JSON edited by hand: no checksum to compare
    (tmp_path / "model.json").write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a valid safetensors file"):
        checkpoint.load(tmp_path)


def test_json_is_indented_in_insertion_order_with_a_final_newline(tmp_path):
    checkpoint.atomic_write_json(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "m.json").read_text() == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'


def test_the_temporary_is_a_hidden_sibling_of_the_target(tmp_path, monkeypatch):
    # Seen at the moment the data is flushed to disk: a dot-file beside the target (same file system,
    # so the rename is atomic; hidden from globs such as *.json) that the rename then replaces.
    seen = []
    real_fsync = os.fsync

    def fsync_and_look(fd):
        seen.extend(p.name for p in (tmp_path / "out").iterdir())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_and_look)
    checkpoint.atomic_write_bytes(tmp_path / "out" / "m.json", b"{}")
    assert len(seen) == 1 and seen[0].startswith(".m.json.") and seen[0].endswith(".tmp"), seen
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.json"]
