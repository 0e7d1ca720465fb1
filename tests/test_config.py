from pathlib import Path

import pytest

from astroloom.config import MODEL_PRESETS, ConfigError, load_config, parse_override


def test_defaults_validate():
    cfg = load_config()
    assert cfg.model.n_patches == 64 and cfg.model.patch_dim == 192


def test_preset_then_override(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('out = "x"\n[model]\npreset = "small"\nn_layer = 3\n')
    cfg = load_config(path, ["train.lr=3e-4", "train.device=cpu"])
    assert cfg.model.n_embd == MODEL_PRESETS["small"]["n_embd"]
    assert cfg.model.n_layer == 3
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.train.device == "cpu"  # bare strings are accepted on the command line


def test_unknown_key_names_key_and_allowed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "learning_rate" in message and str(path) in message and "lr" in message


def test_unknown_section_and_preset():
    with pytest.raises(ConfigError, match="unknown section 'optim'"):
        load_config(None, ["optim.lr=1"])
    with pytest.raises(ConfigError, match="unknown model preset 'huge'.*tiny"):
        load_config(None, ["model.preset=huge"])


def test_wrong_type_and_bad_values():
    with pytest.raises(ConfigError, match="train.steps must be int"):
        load_config(None, ["train.steps=1.5"])
    with pytest.raises(ConfigError, match="divisible"):
        load_config(None, ["model.n_embd=100", "model.n_head=3"])
    with pytest.raises(ConfigError, match="multiple"):
        load_config(None, ["model.image_size=60"])
    with pytest.raises(ConfigError, match="train.device"):
        load_config(None, ["train.device=tpu"])


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_parse_override_forms():
    assert parse_override("train.lr=1e-3") == (["train", "lr"], 1e-3)
    assert parse_override("out=runs/x") == (["out"], "runs/x")
    with pytest.raises(ConfigError):
        parse_override("train.lr")


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.toml")):
        load_config(path)


def test_bad_set_key_is_reported_as_coming_from_set(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[train]\nsteps = 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.stpes=5"])
    message = str(err.value)
    assert "from --set 'train.stpes=5'" in message and "Did you mean 'steps'" in message
    assert str(path) not in message
    with pytest.raises(ConfigError, match="unknown section 'trian' \\(from --set"):
        load_config(path, ["trian.steps=5"])


def test_saved_configs_of_older_formats_keep_their_meaning(tmp_path):
    """A config.json written by astroloom 0.1 (no format_version) reads with the image
    normalisation and light-curve tokens that version trained with; a newer format is
    refused with the way out."""
    import json

    from astroloom.config import FORMAT_VERSION, config_from_json

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"model": {"n_layer": 2, "n_embd": 32, "n_head": 2}}))
    cfg = config_from_json(old)
    assert cfg.model.image_norm == "survey" and cfg.model.lightcurve_phase is False
    new = tmp_path / "new.json"
    cfg.save(new)
    assert json.loads(new.read_text())["format_version"] == FORMAT_VERSION
    assert config_from_json(new).model.image_norm == "survey"  # kept, now explicit
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"format_version": FORMAT_VERSION + 1, "model": {}}))
    with pytest.raises(ConfigError, match="upgrade astroloom"):
        config_from_json(future)


def test_a_saved_config_names_its_data_and_base_run_from_any_directory(tmp_path, monkeypatch):
    """The data and the run that continued pretraining started from are recorded so that
    `astroloom train config.json` finds them wherever it is run; a model name is kept."""
    import json

    from astroloom.config import config_from_json

    (tmp_path / "runs" / "base").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.path='data'", "train.init='runs/base'"])
    cfg.save(tmp_path / "config.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = config_from_json(tmp_path / "config.json")
    assert Path(again.train.init) == (tmp_path / "runs" / "base").resolve()
    assert Path(again.data.path) == (tmp_path / "data").resolve()
    named = load_config(None, ["train.init='astroloom/mock-tiny'"])
    named.save(tmp_path / "named.json")
    recorded = json.loads((tmp_path / "named.json").read_text())
    assert recorded["train"]["init"] == "astroloom/mock-tiny"


def test_stream_settings_are_checked():
    assert load_config(None, ["data.stream=true"]).data.stream is True
    for bad in ("data.workers=-1", "data.shuffle_buffer=-5"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(None, [bad]).validate()
