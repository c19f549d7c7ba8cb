"""How sparse an env's reward is (`esbench envs --reward-stats`): the statistics of first episodes, under random
actions and under stored trained policies."""

import dataclasses
import math

import numpy as np
import pytest
from conftest import tiny_spec

from esbench import cli
from esbench.envs.check import reward_stats
from esbench.results import ResultStore
from esbench.runner import run_trial


def test_reward_stats_count_first_episodes_only():
    # env 0 ends at step 2, then a new episode starts (its reward 5 is not in the first episode);
    # env 1 never ends: all four steps count.
    reward = np.array([[0.0, 1.0, 0.0, 5.0], [0.0, 0.0, -1.0, 0.0]])
    done = np.array([[False, False, True, False], [False, False, False, False]])
    stats = reward_stats(reward, done)
    returns = np.array([1.0, -1.0])
    assert stats.episodes == 2
    assert stats.return_mean == returns.mean()
    assert stats.return_sem == returns.std(ddof=1) / math.sqrt(2)
    assert stats.length_mean == (3 + 4) / 2
    assert stats.nonzero_steps == 2 / 7  # 1.0 and -1.0 among the 7 steps inside first episodes
    assert stats.rewarded_episodes == 0.5  # only env 0 has a positive reward
    assert (stats.reward_min, stats.reward_max) == (-1.0, 1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    spec = dataclasses.replace(tiny_spec(seeds=(0, 1)), stage="final")
    ResultStore(out).write(run_trial(spec, progress=False))
    return out


def test_reward_stats_cli_shows_random_and_every_seed_of_a_trained_policy(trained, capsys):
    code = cli.main(["envs", "--reward-stats", "CartPole-v1", "--policies", str(trained), "--episodes", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line for line in out.splitlines() if "CartPole-v1" in line]
    assert [r.split("│")[2].strip() for r in rows] == ["random", "eggroll seed 0", "eggroll seed 1"]
    for row in rows:  # CartPole rewards 1 per step: every step is rewarded, and the return is the length
        cells = [c.strip() for c in row.split("│")]
        assert cells[6] == "100.00%" and cells[7] == "100%" and cells[8] == "[1, 1]"
        assert round(float(cells[3])) == int(cells[5])


def test_reward_stats_cli_refuses_a_folder_without_trials(tmp_path, capsys):
    code = cli.main(["envs", "--reward-stats", "CartPole-v1", "--policies", str(tmp_path)])
    assert code == 2
    assert "not a results folder (no trials/ in it)" in capsys.readouterr().err
