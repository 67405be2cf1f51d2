"""Training configs: presets, dotted overrides, validation errors, and the `idvid train` command line."""

from __future__ import annotations

import pytest

from idvid import cli as idvid_cli
from idvid.errors import InputError
from idvid.train.config import (
    DataConfig,
    TrainConfig,
    list_presets,
    load_config,
    parse_overrides,
    resolve_config_path,
)


def test_overrides_parse_to_nested_yaml_values():
    got = parse_overrides(["optim.lr=3e-4", "max_steps=20", "ema.enabled=false", "optim.betas=[0.8, 0.9]",
                           "task.model_overrides={backbone: {precision: bf16}}", "data.path=a=b"])
    assert got == {"optim": {"lr": "3e-4", "betas": [0.8, 0.9]}, "max_steps": 20, "ema": {"enabled": False},
                   "task": {"model_overrides": {"backbone": {"precision": "bf16"}}}, "data": {"path": "a=b"}}
    cfg = load_config("toy", ["optim.lr=3e-4", "max_steps=20", "ema.enabled=false", "optim.betas=[0.8, 0.9]"])
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)  # "3e-4" is a YAML string
    assert cfg.max_steps == 20 and cfg.ema.enabled is False and cfg.optim.betas == [0.8, 0.9]
    assert cfg.task.kind == "toy" and cfg.task.dim == 8  # the task section is the toy task's own config class


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown key optim.lrr"),
        ("bogus=1", "unknown key bogus"),
        ("max_steps=many", "max_steps: expected an integer, got 'many'"),
        ("max_steps=2.5", "max_steps: expected an integer"),
        ("ema.enabled=maybe", "ema.enabled: expected true or false"),
        ("optim.lr=-1", "optim.lr: must be > 0"),
        ("precision=fp16", "precision: must be 'no' or 'bf16'"),
        ("train_mode=lora", "train_mode: must be 'full' or 'adapter'"),
        ("optim=3", "optim: expected a mapping"),
        ("task.kind=nope", "unknown task 'nope'"),
        ("task.hidden=0", "task.hidden: must be >= 1"),
        ("max_steps", "is not key=value"),
        ("data.seed_start=999999", "reach beyond the training range"),
        ("data.seed_start=2000000", "never trained on"),
        ("data.validation_seed=5", "data.validation_seed: must be in the validation range"),
        ("data.source=folder", "data.path: is required"),
        ("data.path=/no/such/folder", None),  # only checked with source=folder: fine alone
    ],
)
def test_bad_configs_are_one_line_input_errors(override, message):
    if message is None:
        load_config("toy", [override])
        return
    with pytest.raises(InputError) as info:
        load_config("toy", [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_files_and_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file or preset"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="no such folder"):
        load_config("toy", ["data.source=folder", f"data.path={tmp_path / 'missing'}"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(InputError, match="expected a mapping at the top level"):
        load_config(bad)
    bad.write_text("a: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)


def test_presets_load_and_round_trip_through_yaml(tmp_path):
    assert {"toy", "tiny-synth-vae", "tiny-synth-moca", "cogvideox-5b-moca-adapter"} <= set(list_presets())
    assert resolve_config_path("toy").name == "toy.yaml"
    for name in list_presets():
        extra = [f"task.model={tmp_path}", f"data.path={tmp_path}"] if name.startswith("cogvideox") else []
        cfg = load_config(name, extra)
        path = tmp_path / f"{name}.yaml"
        cfg.to_yaml(path)
        assert load_config(path).to_dict() == cfg.to_dict()
    # the identity presets never train on validation/held-out people
    cfg = load_config("tiny-synth-moca")
    assert cfg.data.seed_start + cfg.data.num_identities <= 1_000_000 <= cfg.data.validation_seed


def test_config_dataclasses_validate_directly():
    with pytest.raises(InputError, match="data.image_ratio"):
        DataConfig(image_ratio=1.5)
    with pytest.raises(InputError, match="data.num_identities"):
        DataConfig(num_identities=0)
    from idvid.train.identity_task import IdentityTaskConfig

    assert isinstance(TrainConfig().task, IdentityTaskConfig)  # the default task gets its own config class
    assert TrainConfig(task={"kind": "toy", "dim": 3}).task.dim == 3
    with pytest.raises(InputError, match="unknown key task.dimm"):
        TrainConfig(task={"kind": "toy", "dimm": 3})


@pytest.fixture
def idvid_main(monkeypatch, capsys):
    """`idvid ...` with the train subcommand registered as the lead will register it."""
    monkeypatch.setitem(idvid_cli.SUBCOMMANDS, "train", ("idvid.train.cli:train", "Train a model."))

    def run(*argv):
        with pytest.raises(SystemExit) as info:
            idvid_cli.main(list(argv))
            raise SystemExit(0)
        out = capsys.readouterr()
        return info.value.code, out.out, out.err

    return run


def test_cli_help_and_one_line_errors(idvid_main, tmp_path):
    code, out, _ = idvid_main("train", "--help")
    assert code == 0
    for option in ("--config", "--resume / --no-resume", "--from-checkpoint", "--export", "--print-config",
                   "--list-presets", "KEY=VALUE"):
        assert option in out
    code, out, _ = idvid_main("train", "--list-presets")
    assert code == 0 and "toy" in out.split()
    code, out, _ = idvid_main("train", "--config", "toy", "max_steps=7", "--print-config")
    assert code == 0 and "max_steps: 7" in out
    for argv, message in [
        (("--config", "toy", "optim.lrr=1"), "unknown key optim.lrr"),
        (("--config", str(tmp_path / "none.yaml")), "no such file or preset"),
        (("--config", "toy", "data.seed_start=1500000"), "never trained on"),
        (("--config", "toy", f"run_dir={tmp_path}", "--resume"), "nothing to resume"),
    ]:
        code, _, err = idvid_main("train", *argv)
        assert code == 2, err
        assert err.startswith("idvid: error: ") and message in err and err.count("\n") == 1
