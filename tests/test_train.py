"""The trainer: exact resume after a kill, EMA, LR schedule, pickle-free atomic checkpoints, adapter mode.

Uses the toy denoising task (`idvid.train.toy`), so these tests do not depend on the video models."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from idvid.train import checkpoint as ckpt_mod
from idvid.train import load_config, setup
from idvid.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from idvid.train.config import OptimConfig
from idvid.train.ema import EMA
from idvid.train.trainer import fit, lr_at

pytestmark = pytest.mark.usefixtures("one_torch_thread")


BASE = ["max_steps=12", "log.every=1", "log.progress=false", "optim.accumulation=2", "optim.warmup_steps=3",
        "optim.lr=1e-2", "checkpoint.every=4", "checkpoint.keep_last=2", "validation.every=3", "batch_size=4",
        "task.num_items=40", "ema.decay=0.9"]


def toy(run_dir: Path, *extra: str):
    return load_config("toy", [*BASE, f"run_dir={run_dir}", *extra])


class Killed(Exception):
    pass


def kill_at(step: int):
    def on_step(run, losses):
        if run.step == step:
            raise Killed

    return on_step


def train_records(run_dir: Path) -> dict[int, dict]:
    out = {}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "train":
            assert r["step"] not in out, f"step {r['step']} logged twice"
            out[r["step"]] = r
    return out


def test_killed_run_resumes_with_the_same_loss_trajectory(tmp_path):
    # uninterrupted: 12 steps (10 items/epoch at batch 4 -> several epochs, so epoch boundaries are crossed)
    straight = setup(toy(tmp_path / "a"))
    fit(straight)
    # killed after step 7 (last checkpoint: step 4), then resumed to 12 with a DataLoader worker this time
    first = setup(toy(tmp_path / "b"))
    with pytest.raises(Killed):
        fit(first, on_step=kill_at(7))
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step-00000004"]
    resumed = setup(toy(tmp_path / "b", "data.num_workers=1"))
    assert resumed.step == 4 and resumed.resumed_from.name == "step-00000004"
    tail = fit(resumed)

    want = {h["step"]: h for h in straight.history}
    assert [h["step"] for h in tail] == list(range(4, 12))
    for h in tail:
        for key in ("loss", "mse", "l1", "grad_norm"):
            assert abs(h[key] - want[h["step"]][key]) <= 1e-6, (h["step"], key)
    # the whole log reads like one run, and the final weights, EMA and validation agree
    a, b = train_records(tmp_path / "a"), train_records(tmp_path / "b")
    assert sorted(b) == list(range(1, 13))
    assert all(abs(a[s]["loss"] - b[s]["loss"]) <= 1e-6 for s in a)
    for name, p in straight.task.trainable_state_dict().items():
        torch.testing.assert_close(resumed.task.trainable_state_dict()[name], p, rtol=0, atol=1e-6)
        torch.testing.assert_close(resumed.ema.shadow[name], straight.ema.shadow[name], rtol=0, atol=1e-6)
    assert straight.data.state() == resumed.data.state()


def test_real_kill_of_the_cli_resumes_exactly(tmp_path):
    """SIGKILL an `idvid train` process once it has written a checkpoint; `--resume` continues exactly."""
    args = ["--config", "toy", *BASE, "max_steps=40", "checkpoint.every=2", "validation.every=0", "--quiet"]
    killed = tmp_path / "killed"
    code = "import sys; from idvid.train.cli import train; train.main(sys.argv[1:], standalone_mode=False)"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args, f"run_dir={killed}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list_checkpoints(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list_checkpoints(killed), "the run died before its first checkpoint"
    assert latest_checkpoint(killed).name != "step-00000040", "the run finished before it was killed"

    from click.testing import CliRunner

    from idvid.train.cli import train

    runner = CliRunner()
    res = runner.invoke(train, [*args, f"run_dir={killed}", "--resume"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    straight = tmp_path / "straight"
    res = runner.invoke(train, [*args, f"run_dir={straight}"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    a, b = train_records(straight), train_records(killed)
    assert sorted(a) == sorted(b) == list(range(1, 41))
    assert max(abs(a[s]["loss"] - b[s]["loss"]) for s in a) <= 1e-6


def test_sigterm_checkpoints_the_step_in_flight_and_resumes_exactly(tmp_path):
    """SIGTERM at step 6 (checkpoints every 4): fit ends the step, checkpoints step 6, raises
    TrainingStopped and puts the old handler back; the resumed run equals an uninterrupted one."""
    from idvid.train.trainer import TrainingStopped

    def terminate_at(step):
        def on_step(run, losses):
            if run.step == step:
                os.kill(os.getpid(), signal.SIGTERM)

        return on_step

    def theirs(signum, frame):  # a handler someone else installed (ray.init does) must come back
        raise AssertionError("the trainer's own handler should have taken the signal")

    previous = signal.signal(signal.SIGTERM, theirs)
    try:
        stopped = setup(toy(tmp_path / "a"))
        with pytest.raises(TrainingStopped) as info:
            fit(stopped, on_step=terminate_at(6))
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert info.value.step == 6 and info.value.signum == signal.SIGTERM
    assert info.value.checkpoint == latest_checkpoint(tmp_path / "a") and info.value.checkpoint.name == "step-00000006"
    records = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert records[-1] == {"kind": "stopped", "step": 6, "signal": "SIGTERM"}

    resumed = setup(toy(tmp_path / "a"))
    assert resumed.step == 6
    fit(resumed)
    straight = setup(toy(tmp_path / "b"))
    fit(straight)
    a, b = train_records(tmp_path / "b"), train_records(tmp_path / "a")
    assert sorted(a) == sorted(b) == list(range(1, 13))
    assert max(abs(a[s]["loss"] - b[s]["loss"]) for s in a) <= 1e-6


def test_sigterm_to_the_cli_exits_143_with_a_resume_hint(tmp_path):
    args = ["--config", "toy", *BASE, "max_steps=100000", "checkpoint.every=1000", "validation.every=0",
            f"run_dir={tmp_path}", "--quiet"]
    code = "from idvid.cli import main; import sys; main(['train', *sys.argv[1:]])"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and '"kind": "train"' not in _read(tmp_path / "log.jsonl"):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    step = int(err.split("at step ")[1].split(",")[0])
    assert latest_checkpoint(tmp_path).name == f"step-{step:08d}"
    assert err.strip().splitlines()[-1].endswith("run the same command to resume")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_ema_update_equation_on_hand_numbers():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    ema = EMA([("w", w)], decay=0.5, warmup=False)
    with torch.no_grad():
        w.copy_(torch.tensor([3.0, 0.0]))
    ema.update([("w", w)])  # 0.5 * [1, -2] + 0.5 * [3, 0]
    torch.testing.assert_close(ema.shadow["w"], torch.tensor([2.0, -1.0]))
    with torch.no_grad():
        w.copy_(torch.tensor([-1.0, 4.0]))
    ema.update([("w", w)])  # 0.5 * [2, -1] + 0.5 * [-1, 4]
    torch.testing.assert_close(ema.shadow["w"], torch.tensor([0.5, 1.5]))
    # swapping the average in for validation restores the live weights afterwards
    with ema.swapped_in([("w", w)]):
        torch.testing.assert_close(w.detach(), torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(w.detach(), torch.tensor([-1.0, 4.0]))

    # warmup: d_n = min(decay, (1 + n) / (10 + n)) -> d_1 = 2/11, d_2 = 3/12
    v = torch.nn.Parameter(torch.tensor([0.0]))
    ema = EMA([("v", v)], decay=0.99, warmup=True)
    with torch.no_grad():
        v.fill_(11.0)
    ema.update([("v", v)])
    assert ema.shadow["v"].item() == pytest.approx(9.0)  # (2/11) * 0 + (9/11) * 11
    with torch.no_grad():
        v.fill_(1.0)
    ema.update([("v", v)])
    assert ema.shadow["v"].item() == pytest.approx(0.25 * 9.0 + 0.75 * 1.0)
    assert ema.decay_at(10_000) == 0.99


def test_lr_warmup_then_cosine():
    o = OptimConfig(lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_at(s, o, 104) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, o, 104) == pytest.approx(1.0)
    assert lr_at(54, o, 104) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert lr_at(104, o, 104) == pytest.approx(0.1)
    assert lr_at(10, OptimConfig(lr=0.5, schedule="constant"), 100) == 0.5
    # a run stopped part-way along a longer planned schedule takes that schedule's rates
    planned = OptimConfig(lr=1.0, warmup_steps=4, min_lr_ratio=0.1, schedule_steps=104)
    assert [lr_at(s, planned, 54) for s in (0, 30, 53)] == [lr_at(s, o, 104) for s in (0, 30, 53)]
    assert lr_at(53, planned, 54) > lr_at(53, o, 54)


def _assert_not_pickle(path: Path) -> None:
    head = path.read_bytes()[:8]
    assert not head.startswith(b"\x80"), f"{path.name} is a pickle"
    assert not head.startswith(b"PK"), f"{path.name} is a zip (torch.save)"


def test_checkpoints_hold_no_pickle_and_round_trip(tmp_path):
    run = setup(toy(tmp_path, "max_steps=4", "validation.every=0"))
    fit(run)
    (ck,) = list_checkpoints(tmp_path)
    names = sorted(p.name for p in ck.iterdir())
    assert names == ["config.yaml", "ema.safetensors", "model.safetensors", "optimizer.json",
                     "optimizer.safetensors", "trainer.json"]
    for p in ck.iterdir():
        _assert_not_pickle(p)
        if p.suffix == ".safetensors":
            n = int.from_bytes(p.read_bytes()[:8], "little")  # safetensors: u64 header size + JSON header
            json.loads(p.read_bytes()[8 : 8 + n])
            load_file(str(p))
        elif p.suffix == ".json":
            json.loads(p.read_text())
    loaded = load_checkpoint(ck)
    assert loaded.step == 4 and loaded.trainer["data"]["epoch"] >= 0
    live = run.optimizer.state_dict()
    for index, state in live["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(loaded.optimizer["state"][index][key], value.cpu(), rtol=0, atol=0)
    assert loaded.optimizer["param_groups"] == live["param_groups"]
    assert load_config(ck / "config.yaml").to_dict() == run.config.to_dict()


def test_a_crash_mid_save_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    run = setup(toy(tmp_path, "max_steps=8", "validation.every=0"))
    real_save = ckpt_mod.save_file
    calls = []

    def crash_on_optimizer(tensors, filename, metadata=None):
        calls.append(filename)
        if Path(filename).name == "optimizer.safetensors" and "00000008" in filename:
            Path(filename).write_bytes(b"half a file")
            raise OSError("disk full")
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt_mod, "save_file", crash_on_optimizer)
    with pytest.raises(OSError, match="disk full"):
        fit(run)
    root = tmp_path / "checkpoints"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000004"]
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    assert any(p.name.startswith(".tmp-step-00000008") for p in root.iterdir())
    monkeypatch.setattr(ckpt_mod, "save_file", real_save)
    again = setup(toy(tmp_path, "max_steps=8", "validation.every=0"))  # cleans up, resumes from step 4
    assert again.step == 4
    assert not any(p.name.startswith(".tmp") for p in root.iterdir())
    fit(again)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000004", "step-00000008"]


def test_adapter_mode_trains_and_saves_only_the_adapter(tmp_path):
    run = setup(toy(tmp_path, "train_mode=adapter", "max_steps=4", "validation.every=0"))
    before = {k: v.clone() for k, v in run.task.backbone.state_dict().items()}
    fit(run)
    saved = load_file(str(latest_checkpoint(tmp_path) / "model.safetensors"))
    assert sorted(saved) == ["adapter.bias", "adapter.weight"]
    for k, v in run.task.backbone.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert run.task.adapter.weight.abs().sum() > 0  # zero-initialised, then trained


def test_bf16_autocast_and_resume_refusal(tmp_path):
    run = setup(toy(tmp_path, "precision=bf16", "max_steps=2", "validation.every=0"))
    hist = fit(run)
    assert all(math.isfinite(h["loss"]) for h in hist)
    from idvid.errors import InputError

    with pytest.raises(InputError, match="already holds checkpoints"):
        setup(toy(tmp_path, "max_steps=2"), resume=False)
    with pytest.raises(InputError, match="nothing to resume"):
        setup(toy(tmp_path / "fresh"), resume=True)


def test_validation_hooks_run_every_n_steps_on_the_ema_weights(tmp_path):
    seen = []

    def hook(ctx):
        seen.append((ctx.step, ctx.ema, {k: v.clone() for k, v in ctx.task.trainable_state_dict().items()}))
        assert ctx.out_dir == tmp_path / "samples" / f"step-{ctx.step:08d}"
        return {"hook_metric": 1.5, "ignored": "not a number"}

    run = setup(toy(tmp_path, "max_steps=4", "validation.every=2"), hooks=[hook])
    fit(run)
    assert [(step, ema) for step, ema, _ in seen] == [(2, True), (4, True)]
    for name, value in seen[-1][2].items():
        torch.testing.assert_close(value, run.ema.shadow[name])
    live = run.task.trainable_state_dict()
    assert any(not torch.equal(live[k], run.ema.shadow[k]) for k in live)  # restored after validation
    vals = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"val"' in line]
    assert [(v["step"], v["hook_metric"], "val_mse" in v, "ignored" in v) for v in vals] == \
        [(2, 1.5, True, False), (4, 1.5, True, False)]
    from idvid.errors import InputError

    with pytest.raises(InputError, match="cannot import 'no_such_module:hook'"):
        setup(toy(tmp_path / "other", "validation.hooks=['no_such_module:hook']"))



def _worker_pid(i):
    import time

    time.sleep(0.2 * i)  # let the signals arrive before the later items are made
    return os.getpid()


def test_loader_workers_leave_stop_signals_to_the_main_process():
    """SIGTERM and SIGINT to a DataLoader worker (as `pkill -f` and Ctrl-C's process-group SIGINT deliver) do
    not kill it: the main process alone decides to stop, after checkpointing."""
    from torch.utils.data import DataLoader

    from idvid.train.trainer import ignore_stop_signals

    loader = DataLoader(list(range(4)), batch_size=None, num_workers=1, collate_fn=_worker_pid,
                        worker_init_fn=ignore_stop_signals)
    it = iter(loader)
    pid = int(next(it))
    assert pid != os.getpid()
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    assert [int(x) for x in it] == [pid] * 3
