"""Packed faces (`kplab pack`): round trip from every reader, memory-mapped batches that equal the
in-memory ones, training that ends on the same weights, and clear errors for damaged packs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kplab.errors import DataError
from kplab.faces.training.batches import FaceTensors
from kplab.faces.training.data import available_splits, read_faces, read_train_val, write_csv, write_npz
from kplab.faces.training.evaluate import to_tensors
from kplab.faces.training.layout import KAGGLE15
from kplab.faces.training.packed import PackWriter, is_mapped, read_packed, write_packed
from kplab.faces.training.synthetic import synthetic_faces
from kplab.faces.training.train import TrainConfig, train
from kplab.faces.training.model import ModelConfig

KPLAB = [sys.executable, "-m", "kplab"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """An .npz with splits, person ids and a missing keypoint: what a real source carries."""
    faces = synthetic_faces(60, seed=1)
    faces.keypoints[3, 10] = np.nan
    faces.person = np.array([f"p{i // 3}" for i in range(60)])
    path = tmp_path_factory.mktemp("packed") / "faces.npz"
    write_npz(path, {"train": faces.subset(np.arange(48)), "val": faces.subset(np.arange(48, 60))})
    return path


def _same(a, b):
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.keypoints, b.keypoints, equal_nan=True)
    assert np.array_equal(a.names, b.names) and np.array_equal(a.person, b.person)


def test_pack_command_keeps_every_split_and_maps_the_images(npz, tmp_path):
    proc = subprocess.run([*KPLAB, "pack", str(npz), "--out", str(tmp_path / "pk")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "packed 60 faces (48 train, 12 val)" in proc.stderr
    assert available_splits(tmp_path / "pk") == ("train", "val")
    for split in ("train", "val"):
        packed = read_faces(tmp_path / "pk", split)
        _same(packed, read_faces(npz, split))
        assert is_mapped(packed.images)  # a view of the file, not a copy
    train, val = read_train_val(tmp_path / "pk")
    assert is_mapped(train.images) and len(train) == 48 and len(val) == 12
    assert (tmp_path / "pk" / "images.npy").stat().st_size >= 60 * 96 * 96  # uncompressed rows


def test_a_source_without_splits_is_packed_as_its_training_hold_out(tmp_path):
    faces = synthetic_faces(40, seed=2)
    write_csv(tmp_path / "faces.csv", faces)
    proc = subprocess.run([*KPLAB, "pack", str(tmp_path / "faces.csv"), "--out", str(tmp_path / "pk")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for packed, direct in zip(read_train_val(tmp_path / "pk"), read_train_val(tmp_path / "faces.csv")):
        assert np.array_equal(packed.images, direct.images) and np.array_equal(packed.names, direct.names)


def test_mapped_batches_equal_in_memory_batches(npz, tmp_path):
    write_packed(tmp_path / "pk", {"train": read_faces(npz, "train")})
    mapped, memory = read_packed(tmp_path / "pk", "train"), read_faces(npz, "train")
    lazy, whole = FaceTensors(mapped), to_tensors(memory)
    assert lazy.mapped is not None and len(lazy) == 48
    idx = torch.tensor([7, 3, 40, 3, 0])  # any order, repeats allowed
    for got, want in zip(lazy[idx], whole):
        assert torch.equal(got, want[idx])


def test_training_on_a_pack_ends_on_the_same_weights_as_in_memory(npz, tmp_path):
    write_packed(tmp_path / "pk", {"train": read_faces(npz, "train"), "val": read_faces(npz, "val")})
    cfg = TrainConfig(model=ModelConfig(widths=(4, 8, 8, 16), blocks=(0, 0, 1, 0), head_width=4),
                      epochs=2, batch_size=8, threads=1)
    weights = {}
    for name, source in (("memory", npz), ("packed", tmp_path / "pk")):
        train_set, val_set = read_train_val(source)
        train(cfg, train_set, val_set, tmp_path / name)
        weights[name] = load_file(tmp_path / name / "state" / "train.safetensors")
    assert weights["memory"].keys() == weights["packed"].keys()
    for key in weights["memory"]:
        assert torch.equal(weights["memory"][key], weights["packed"][key]), key


def test_damaged_packs_are_refused_by_name(npz, tmp_path):
    pk = tmp_path / "pk"
    write_packed(pk, {"train": read_faces(npz, "train")})
    with pytest.raises(DataError, match="no split 'val'.*splits: train"):
        read_faces(pk, "val")
    with pytest.raises(DataError, match="not empty"):
        write_packed(pk, read_faces(npz, "train"))
    with open(pk / "images.npy", "r+b") as f:  # a copy cut short
        f.truncate(20_000)
    with pytest.raises(DataError, match="images.npy"):
        read_faces(pk, "train")
    (pk / "manifest.json").unlink()  # what an interrupted `kplab pack` leaves
    with pytest.raises(DataError, match="no manifest.json"):
        read_train_val(pk)
    bad = tmp_path / "bad"
    write_packed(bad, read_faces(npz, "val"))
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["keypoint_names"][0] = "left_pupil"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="bad: its 15 keypoint names match no known layout"):
        read_faces(bad)
    with pytest.raises(DataError, match="left_eye_center of layout kaggle15"):
        read_faces(bad, layout=KAGGLE15)
    assert KAGGLE15.names[0] == "left_eye_center"


def _resident_kb(path) -> int:
    """Resident kB of this process's mappings of `path` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        if "-" in line.split(" ", 1)[0] and ":" not in line.split(" ", 1)[0]:  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_batches_leave_no_pages_of_the_pack_resident(tmp_path):
    faces = synthetic_faces(100, seed=3)
    writer = PackWriter(tmp_path / "pk", {"train": 4000})
    for _ in range(40):  # 37 MB of rows
        writer.write("train", faces)
    writer.close()
    data = FaceTensors(read_packed(tmp_path / "pk", "train"))
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        data[torch.randperm(4000, generator=gen)[:32]]
    # Without dropping the pages, each 9 KB row leaves at least the kernel's fault-around window
    # (64 KB; a 2 MB folio on the machine measured) resident: over 15 MB after these 960 rows.
    assert _resident_kb((tmp_path / "pk" / "images.npy").resolve()) < 1024
