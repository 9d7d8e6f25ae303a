"""Config loading, validation and --set overrides (hgn_pyg.config)."""
from pathlib import Path

import pytest
import yaml

from hgn_pyg.config import Config, apply_overrides, check_paths, config_from_dict, load_config, parse_override
from hgn_pyg.errors import ConfigError, HGNError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["hgn_h36m.yaml", "hgn_synthetic.yaml", "hgn_test.yaml"]


def write(tmp_path, data, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert isinstance(cfg, Config)
    # round trip through YAML gives the same object
    assert config_from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def test_h36m_recipe_matches_spec():
    cfg = load_config(REPO / "configs" / "hgn_h36m.yaml")
    t = cfg.TRAIN
    assert (t.batch_size, t.lr, t.lr_factor, t.optimizer, t.grad_clip) == (64, 1e-3, 0.9, "adam", 1.0)
    assert t.lr_step == list(range(20, 141, 20))
    assert (t.begin_epoch, t.end_epoch) == (0, 151)
    assert t.joint_loss_weight == 100.0 and t.mesh_loss_weights == [1.0, 1.0]
    assert (cfg.DATASET.train_subsample, cfg.DATASET.test_subsample) == (5, 50)
    assert cfg.DATASET.train_subjects == [1, 5, 6, 7, 8] and cfg.DATASET.test_subjects == [9, 11]
    assert cfg.MODEL.mesh_levels == [8, 7] and cfg.MODEL.hidden_channels == 128


def test_published_keys_present():
    d = Config().to_dict()
    for k in ["train_list", "test_list", "input_joint_set", "target_joint_set", "workers", "use_gt_input"]:
        assert k in d["DATASET"]
    for k in ["batch_size", "shuffle", "begin_epoch", "end_epoch", "scheduler", "lr", "lr_step", "lr_factor",
              "optimizer", "print_freq"]:
        assert k in d["TRAIN"]
    for k in ["batch_size", "shuffle", "weight_path", "vis"]:
        assert k in d["TEST"]
    assert "AUG" in d and "MODEL" in d


def test_unknown_key_suggests(tmp_path):
    p = write(tmp_path, {"TRAIN": {"lr_stpe": [10]}})
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "TRAIN.lr_stpe" in msg and "TRAIN.lr_step" in msg
    assert isinstance(e.value, HGNError) and isinstance(e.value, ValueError)


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'TRAIN'"):
        load_config(write(tmp_path, {"TRIAN": {"lr": 0.1}}))


@pytest.mark.parametrize("section,key,value", [
    ("TRAIN", "batch_size", "64"), ("TRAIN", "batch_size", 6.5), ("TRAIN", "shuffle", 1),
    ("TRAIN", "lr", "fast"), ("MODEL", "mesh_levels", 8), ("TRAIN", "lr_step", ["a"]),
    ("DATASET", "root", 3),
])
def test_wrong_type(tmp_path, section, key, value):
    p = write(tmp_path, {section: {key: value}})
    with pytest.raises(ConfigError, match=f"{section}.{key}") as e:
        load_config(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("section,key,value", [
    ("TRAIN", "batch_size", 0), ("TRAIN", "lr", -1.0), ("MODEL", "fusion", "magic"),
    ("DATASET", "format", "coco"), ("TRAIN", "end_epoch", 0), ("MODEL", "mesh_levels", [7, 8]),
    ("EXPERIMENT", "device", "tpu"), ("TRAIN", "optimizer", "lbfgs"), ("MODEL", "dropout", 1.5),
])
def test_bad_value(tmp_path, section, key, value):
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        load_config(write(tmp_path, {section: {key: value}}))


def test_int_accepted_as_float_and_sci_notation(tmp_path):
    cfg = load_config(write(tmp_path, "TRAIN:\n  lr: 1e-3\n  lr_factor: 1\n"))
    assert cfg.TRAIN.lr == 1e-3 and isinstance(cfg.TRAIN.lr_factor, float)


def test_missing_data_root(tmp_path):
    p = write(tmp_path, {"DATASET": {"root": str(tmp_path / "nope")}})
    cfg = load_config(p)  # paths are checked only on request
    with pytest.raises(ConfigError) as e:
        load_config(p, check_data=True)
    assert "DATASET.root" in str(e.value) and str(p) in str(e.value)
    cfg2 = apply_overrides(cfg, ["SYNTHETIC.generate_if_missing=true"])
    check_paths(cfg2)  # generated on demand: fine


def test_missing_body_model(tmp_path):
    p = write(tmp_path, {"DATASET": {"root": str(tmp_path), "body_model_path": str(tmp_path / "smpl.pkl")}})
    with pytest.raises(ConfigError, match="DATASET.body_model_path"):
        load_config(p, check_data=True)


def test_set_overrides(tmp_path):
    p = write(tmp_path, {"TRAIN": {"lr": 0.01}})
    cfg = load_config(p, ["TRAIN.lr=1e-4", "MODEL.mesh_levels=[6, 5]", "TEST.vis=true",
                          "DATASET.root=/x/y", "MODEL.dropout=null"])
    assert cfg.TRAIN.lr == 1e-4 and cfg.MODEL.mesh_levels == [6, 5] and cfg.TEST.vis is True
    assert cfg.DATASET.root == "/x/y" and cfg.MODEL.dropout is None
    assert parse_override("TRAIN.batch_size=8") == ("TRAIN", "batch_size", 8)
    for bad in ["TRAIN.lr", "lr=1", "TRAIN.nope=1", "TRAIN.batch_size=[1"]:
        with pytest.raises(ConfigError):
            load_config(p, [bad])


def test_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "TRAIN: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_no_shared_state():
    a, b = Config(), Config()
    a.TRAIN.lr_step.append(999)
    assert 999 not in b.TRAIN.lr_step
    c = apply_overrides(b, ["TRAIN.lr=0.5"])
    assert b.TRAIN.lr == 1e-3 and c.TRAIN.lr == 0.5


def test_joint_set_spellings_of_the_published_configs_are_resolved():
    """One spelling of each joint set (the SKELETONS names); the published "human36"/"coco" still load."""
    from hgn_pyg.config import config_from_dict
    from hgn_pyg.errors import ConfigError

    cfg = config_from_dict({"DATASET": {"input_joint_set": "human36", "target_joint_set": "human36"}})
    assert (cfg.DATASET.input_joint_set, cfg.DATASET.target_joint_set) == ("h36m", "h36m")
    cfg = config_from_dict({"DATASET": {"input_joint_set": "coco"}})
    assert cfg.DATASET.input_joint_set == "coco17"
    assert config_from_dict({"DATASET": {"input_joint_set": "coco17"}}).DATASET.input_joint_set == "coco17"
    with pytest.raises(ConfigError, match=r"DATASET.input_joint_set: invalid value 'mpii'; expected one of "
                                          r"'h36m', 'coco17'"):
        config_from_dict({"DATASET": {"input_joint_set": "mpii"}})
    with pytest.raises(ConfigError, match="DATASET.target_joint_set: invalid value 'coco17'"):
        config_from_dict({"DATASET": {"target_joint_set": "coco"}})
