import pytest
import yaml

from casestudy import CaseStudyError
from casestudy.config import PRESETS, RunConfig, load_config, save_config


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS.glob("*.yaml")))
def test_every_preset_loads_and_names_its_run(preset):
    config = load_config(preset)
    assert config.name == preset
    assert config.image_size > 0 and config.epochs > 0


def test_flags_override_the_preset_and_none_means_unset():
    config = load_config("demo", epochs=3, lr=None)
    assert config.epochs == 3
    assert config.lr == load_config("demo").lr


def test_unknown_setting_is_named():
    with pytest.raises(CaseStudyError, match="epochz"):
        load_config("demo", epochz=3)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(CaseStudyError, match="demo"):
        load_config("nope")


def test_saved_config_round_trips(tmp_path):
    config = RunConfig(name="x", epochs=2, eval_data=["a"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(str(tmp_path / "config.yaml")) == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["epochs"] == 2


def test_switch_flags_turn_a_setting_on_and_absence_keeps_the_preset():
    from casestudy.cli import build_parser, config_from

    on = config_from(build_parser().parse_args(["train", "--compile", "--lr-batch", "128"]))
    assert on.compile is True and on.lr_batch == 128
    assert config_from(build_parser().parse_args(["train"])).compile is False
