
import pytest

from genlab import config
from genlab.errors import GenlabError
from genlab.models.gpt import GPTConfig
from genlab.data.tokens import TextDataConfig


def build(**kw):
    return config.build("gpt", "shakespeare", GPTConfig, TextDataConfig, **kw)


def test_defaults_and_overrides_are_typed():
    # Run
    cfg = build(overrides=["train.max_steps=7", "train.lr=1e-2", "model.dropout=0.1", "train.compile=true",
                           "data.tokenizer=bpe"])
    # Assert
    assert cfg.train.max_steps == 7 and cfg.train.lr == 0.01 and cfg.train.compile is True
    assert cfg.model.dropout == 0.1 and cfg.data.tokenizer == "bpe"
    assert cfg.model.n_layer == GPTConfig().n_layer


def test_toml_file_then_overrides_win(tmp_path):
    # Setup
    f = tmp_path / "c.toml"
    f.write_text("[model]\nn_layer = 3\n[train]\nmax_steps = 11\nlr = 1\n")
    # Run
    cfg = build(config_file=f, overrides=["train.max_steps=12"])
    # Assert: ints are accepted where floats are expected; the override beats the file
    assert cfg.model.n_layer == 3 and cfg.train.max_steps == 12 and cfg.train.lr == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.n_layers=3", "unknown key 'model.n_layers' (did you mean 'model.n_layer'?)"),
        ("trian.lr=1", "unknown section 'trian' (did you mean 'train'?)"),
        ("train.lr=abc", "cannot read 'abc' as a number"),
        ("train.max_steps=1.5", "train.max_steps = 1.5 is not an integer"),
        ("train.precision=fp16", "train.precision = 'fp16' is not one of 'auto', 'bf16', 'fp32'"),
        ("model.n_embd=130", "must be a multiple of model.n_head"),
        ("train.max_steps=0", "train.max_steps must be at least 1"),
        ("max_steps=3", "expected section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(GenlabError) as e:
        build(overrides=[override])
    assert message in str(e.value)


def test_bad_toml_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[train\nlr = 1")
    with pytest.raises(GenlabError, match="not valid TOML"):
        build(config_file=f)
    f.write_text("[train]\nlearning_rate = 1\n")
    with pytest.raises(GenlabError, match=r"unknown key 'train.learning_rate'"):
        build(config_file=f)
    with pytest.raises(GenlabError, match="does not exist"):
        build(config_file=tmp_path / "missing.toml")


def test_config_round_trips_through_toml(tmp_path):
    # Setup
    cfg = build(overrides=["train.max_steps=9", "model.n_embd=96", "model.n_head=3"])
    # Run
    config.write_toml(cfg, tmp_path / "config.toml")
    again = build(base=config.read_toml(tmp_path / "config.toml"))
    # Assert
    assert again == cfg
