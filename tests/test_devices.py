"""Every local device busy (runner/programs.py's layout), on 8 forced CPU devices against one.

Each case runs in a subprocess (the device count is fixed when JAX starts). EGGROLL and OpenES split
the seeds and each generation's population over a two-axis mesh; PPO pads its seeds to a multiple of
the devices and drops the padding.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NON_TIME_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
# (algorithm, seeds): 10 seeds (8 devices: 2 x 4 for ES) and 3 seeds (ES 1 x 8; PPO padded 3 -> 8)
CASES = [("eggroll", 10), ("openes", 3), ("ppo", 3)]
RUN_CASES = """
import json, sys; sys.path.insert(0, 'tests')
import jax, numpy as np; from flax import serialization; from conftest import tiny_spec
from esbench.runner import run_trial
out = {'devices': jax.local_device_count()}
for algo, seeds in CASES:
    hparams = {} if algo == 'ppo' else {'pop_size': 16}
    r = run_trial(tiny_spec(algo, seeds=tuple(range(seeds)), hparams=hparams), progress=False)
    policy = serialization.msgpack_restore(r.policy_bytes)
    out[algo] = {'layout': r.summary['layout'], 'seeds': sorted(r.summary['final_eval_return']),
                 'policy': jax.tree_util.tree_map(lambda x: np.asarray(x).tolist(), policy),
                 'metrics': r.metrics.drop(columns=['wall_clock_s', 'throughput_sps']).to_dict('list')}
print(json.dumps(out))
"""


def _environment(devices: int) -> dict:
    flags = f"--xla_force_host_platform_device_count={devices}" if devices > 1 else ""
    return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}


@pytest.fixture(scope="module")
def one_and_eight():
    outputs = []
    for devices in (1, 8):
        done = subprocess.run(
            [sys.executable, "-c", RUN_CASES.replace("CASES", repr(CASES))],
            env=_environment(devices),
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return outputs


def test_eight_devices_all_work_in_the_stated_layout(one_and_eight):
    one, eight = one_and_eight
    assert (one["devices"], eight["devices"]) == (1, 8)
    layouts = {
        algo: (eight[algo]["layout"]["mesh_shape"], eight[algo]["layout"]["sharded"]) for algo, _ in CASES
    }
    assert layouts == {
        "eggroll": ([2, 4], {"seeds": "seeds", "population": "population"}),
        "openes": ([1, 8], {"population": "population"}),
        "ppo": ([8], {"seeds (padded 3 -> 8)": "seeds"}),
    }
    assert all(one[algo]["layout"]["sharded"] == {} for algo, _ in CASES)


@pytest.mark.parametrize("algo", [algo for algo, _ in CASES])
def test_eight_devices_give_the_results_of_one(one_and_eight, algo):
    """The padded seeds never reach a record. Measured on this CPU: every count and return is
    bit-identical; the policies agree to float32 rounding (at most 1.2e-7 apart, PPO's 6e-8: another
    per-device batch compiles to other code), as do the m_* update metrics (norms, losses)."""
    one, eight = one_and_eight[0][algo], one_and_eight[1][algo]
    seeds = dict(CASES)[algo]
    assert eight["seeds"] == one["seeds"] == [str(s) for s in range(seeds)]
    assert sorted(set(eight["metrics"]["seed"])) == list(range(seeds))
    for column in NON_TIME_COLUMNS:
        np.testing.assert_array_equal(eight["metrics"][column], one["metrics"][column], err_msg=column)
    for leaf_one, leaf_eight in zip(_leaves(one["policy"]), _leaves(eight["policy"])):
        assert leaf_one.shape == leaf_eight.shape and leaf_one.shape[0] == seeds
        np.testing.assert_allclose(leaf_eight, leaf_one, rtol=1e-5, atol=1e-6)


def _leaves(tree):
    import jax

    # the policies came through JSON: each leaf is a nested list
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, list))]


# One PPO trial (3 seeds: padded to 8 on 8 devices), 4 chunks, killed after its second checkpoint.
PPO_SWEEP = """
envs: [CartPole-v1]
algorithms:
  ppo: {num_envs: 4, num_steps: 8, num_minibatches: 2, layer_size: 8, n_layers: 1}
trial: {seeds: 3, env_steps: 1280, num_logs: 4, eval_episodes: 2, max_episode_steps: 20}
checkpoint_every: 1
"""


def test_a_padded_sharded_state_resumes_on_eight_devices_bit_for_bit(tmp_path):
    from test_long_runs import DIE_AFTER_CHECKPOINT, policies

    from esbench.results import load

    (tmp_path / "sweep.yaml").write_text(PPO_SWEEP)
    (tmp_path / "die_after_checkpoint.py").write_text(DIE_AFTER_CHECKPOINT)

    def sweep(out, *extra):
        command = [
            sys.executable,
            "-m",
            "esbench.cli",
            "sweep",
            "sweep.yaml",
            "--out",
            out,
            "--quiet",
            *extra,
        ]
        env = {**_environment(8), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)

    killed = sweep("resumed", "--import", "die_after_checkpoint")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not list((tmp_path / "resumed" / "trials").glob("CartPole*"))
    for out in ("resumed", "straight"):
        done = sweep(out)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "not used" not in done.stderr  # the resume read the checkpoint
    resumed, straight = load(tmp_path / "resumed"), load(tmp_path / "straight")
    timing = ["wall_clock_s", "throughput_sps"]
    assert resumed.drop(columns=timing).equals(straight.drop(columns=timing))
    assert policies(tmp_path / "resumed") == policies(tmp_path / "straight")
