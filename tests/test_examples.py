"""The examples' fast modes: nn.GRU and gru_triton (its real kernels, in the interpreter when
there is no GPU) agree step by step, and the models learn. The DDP example runs two gloo
processes under torchrun."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
pytest.importorskip("sklearn")
pytest.importorskip("aeon")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")
sys.path.insert(0, str(EXAMPLES))

import common  # noqa: E402


def _run(name, tmp_path, *extra):
    module = __import__(name)
    args = common.parse_args(module.DESCRIPTION, module.add_arguments,
                             ["--fast", "--out-dir", str(tmp_path), *extra])
    results = module.run(args)
    assert (tmp_path / f"{name}.png").stat().st_size > 0
    return {r["impl"]: r for r in results}


def _same_losses(results, rel=1e-4):
    torch_losses, triton_losses = results["torch"]["losses"], results["triton"]["losses"]
    assert len(torch_losses) == len(triton_losses)
    for step, (a, b) in enumerate(zip(torch_losses, triton_losses, strict=True)):
        assert abs(a - b) <= rel * abs(a), f"step {step}: nn.GRU loss {a}, gru_triton loss {b}"


def _learns(losses, factor):
    assert sum(losses[-3:]) / 3 < factor * losses[0], losses


def test_digits_rowwise(tmp_path, launch_counter):
    results = _run("digits_rowwise", tmp_path)
    _same_losses(results)
    assert results["torch"]["test_accuracy"] == results["triton"]["test_accuracy"]
    assert results["triton"]["test_accuracy"] >= 0.2  # chance is 0.1
    _learns(results["triton"]["losses"], 0.9)
    assert launch_counter["fwd"] > 0 and launch_counter["bwd"] > 0


@pytest.mark.parametrize("feed", ["packed", "lengths"])
def test_japanese_vowels(feed, tmp_path, launch_counter):
    results = _run("japanese_vowels", tmp_path, "--feed", feed)
    _same_losses(results)
    assert results["torch"]["test_accuracy"] == results["triton"]["test_accuracy"]
    assert results["triton"]["test_accuracy"] >= 0.5  # chance is about 0.11
    _learns(results["triton"]["losses"], 0.8)
    assert launch_counter["fwd"] > 0


def test_airline_forecast(tmp_path, launch_counter):
    results = _run("airline_forecast", tmp_path)
    _same_losses(results)
    _learns(results["triton"]["losses"], 0.7)
    assert launch_counter["fwd"] > 0


def test_streaming_equals_one_call(tmp_path, launch_counter):
    results = _run("streaming", tmp_path, "--chunk", "7")
    for impl in ("torch", "triton"):
        assert results[impl]["max_abs_difference"] <= 1e-5
    assert launch_counter["fwd"] > 0


def test_ddp_two_gloo_processes(tmp_path):
    result = tmp_path / "ddp.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(EXAMPLES / "ddp_train.py"), "--fast",
                           "--interpret", "--out-dir", str(tmp_path), "--result", str(result)],
                          env=env, capture_output=True, text=True, timeout=600)
    # torchrun's own summary names only the signal; the ranks' errors come before it.
    assert done.returncode == 0, "\n".join(
        line for line in done.stderr.replace("\r", "\n").splitlines() if "it/s" not in line)[-6000:]
    summary = json.loads(result.read_text())
    assert summary["world_size"] == 2
    for impl in ("torch", "triton"):
        assert summary[impl]["replica_max_abs_difference"] == 0.0
        assert summary[impl]["vs_single_process_max_rel_difference"] <= 1e-5
        assert summary[impl]["last_loss"] < summary[impl]["first_loss"]
