import pytest

from panoptic_st.config import ConfigError, load_config


def test_overrides_are_typed_and_interpolated():
    cfg = load_config(None, ["data.batch_size=4", "data.root=/x", "semantic.lr=0.01", "--trainer.max_steps=7"])
    assert cfg.data.batch_size == 4 and isinstance(cfg.data.batch_size, int)
    assert cfg.data.synthia_root == "/x/synthia"
    assert cfg.semantic.lr == 0.01
    assert cfg.trainer.max_steps == 7


@pytest.mark.parametrize(
    "override, expected",
    [
        ("data.batch_sise=4", "unknown config key 'data.batch_sise'; closest valid keys: data.batch_size (int)"),
        ("semantic.lrr=1", "unknown config key 'semantic.lrr'; closest valid keys: semantic.lr (float)"),
        ("data.batch_size=abc", "config key 'data.batch_size' expects int, got 'abc'"),
        ("instance.bandwidth=wide", "config key 'instance.bandwidth' expects float, got 'wide'"),
    ],
)
def test_bad_override_gives_one_line_with_key_type_and_closest(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert "\n" not in message
    assert expected in message


def test_typo_in_yaml_file_names_the_file_and_key(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("data:\n  num_worker: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(exp)
    message = str(info.value)
    assert str(exp) in message and "'data.num_worker'" in message and "data.num_workers (int)" in message


def test_defaults_chain_merges_in_order(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 3\ndata:\n  batch_size: 5\n")
    (tmp_path / "exp.yaml").write_text("defaults: [base.yaml]\ndata:\n  batch_size: 6\n")
    cfg = load_config(tmp_path / "exp.yaml", ["name=x"])
    assert (cfg.seed, cfg.data.batch_size, cfg.output_dir) == (3, 6, "runs/x")


def test_an_unknown_experiment_is_refused_with_where_experiments_live():
    with pytest.raises(ConfigError, match=r"experiment .nope. not found; \d+ experiments under .*configs/experiments"):
        load_config("nope")


def test_a_misspelt_experiment_name_gets_did_you_mean():
    with pytest.raises(ConfigError, match=r"'toy/semantic_basline' not found; did you mean toy/semantic_baseline"):
        load_config("toy/semantic_basline")
