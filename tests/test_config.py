"""Config files: `extends` starts from a shipped preset, then applies the file's own settings."""

import pytest

from kplab.config import load_config, shipped_presets
from kplab.digits.recipe import DigitsConfig
from kplab.errors import ConfigError
from kplab.faces.training.train import TrainConfig


def test_every_shipped_preset_loads_through_its_chain():
    for name in shipped_presets():
        cls = DigitsConfig if name.startswith("digits") else TrainConfig
        assert isinstance(load_config(cls, preset=name), cls)


def test_a_file_extending_a_preset_changes_only_what_it_sets_and_later_settings_win(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('extends = "faces-default"\nepochs = 3\n\n[augment]\nshift = 0.1\n')
    cfg = load_config(TrainConfig, file=mine)
    assert cfg == load_config(TrainConfig, preset="faces-default", overrides=["epochs=3", "augment.shift=0.1"])
    default = load_config(TrainConfig, preset="faces-default")
    assert (cfg.epochs, cfg.augment.shift) == (3, 0.1) != (default.epochs, default.augment.shift)
    # the preset's other settings in the same table survive the file's table
    assert (cfg.augment.reframe, cfg.augment.scale, cfg.model.dense_mode) == (0.3, (0.8, 1.25), "derive")
    assert load_config(TrainConfig, file=mine, overrides=["epochs=5"]).epochs == 5  # --set comes last


def test_fast_is_the_default_recipe_shorter_and_faster():
    fast = load_config(TrainConfig, preset="faces-fast")
    assert fast == load_config(TrainConfig, preset="faces-default", overrides=["epochs=11", "lr=3e-3"])


def test_best_is_the_default_recipe_on_the_wider_network_validated_with_flip_tta():
    best = load_config(TrainConfig, preset="faces-best")
    assert best == load_config(TrainConfig, preset="faces-default", overrides=[
        "epochs=60", "val_tta=true", "model.widths=[24, 48, 96, 192]",
        "model.blocks=[1, 1, 2, 2]", "model.heatmap_stride=4", "model.head_width=64"])


@pytest.mark.parametrize("text, message", [
    ("extends = 3\n", "bad.toml: extends = 3 names no shipped preset; known presets: digits"),
    ('extends = "faces-nope"\n', "bad.toml: extends = 'faces-nope' names no shipped preset"),
])
def test_extends_that_names_no_preset_is_refused_naming_the_file(tmp_path, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, file=bad)


def test_a_loop_of_extends_is_refused_naming_the_file(tmp_path, monkeypatch):
    import kplab.config as config
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "a.toml").write_text('extends = "b"\nepochs = 1\n')
    (presets / "b.toml").write_text('extends = "a"\nepochs = 2\n')
    monkeypatch.setattr(config, "_presets_dir", lambda: presets)
    with pytest.raises(ConfigError, match=r"b.toml: extends = 'a' makes a loop of presets"):
        load_config(TrainConfig, preset="a")
