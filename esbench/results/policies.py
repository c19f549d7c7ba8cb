"""Load a trained policy back from a results folder, ready to act or be evaluated."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import jax
import numpy as np
from flax import serialization

from esbench.algorithms import evaluate, networks
from esbench.envs import Env, make
from esbench.results.store import CorruptResultsError, load_policy_params, read_json, trial_path
from esbench.validation import ConfigError


@dataclass(frozen=True)
class TrainedPolicy:
    env: Env
    params: dict
    activation: str
    deterministic: bool

    def act(self, obs: jax.Array, key: jax.Array) -> jax.Array:
        return networks.act(self.params, obs, key, self.env.spec.action, self.deterministic, self.activation)

    def evaluate(self, key: jax.Array, n_episodes: int = 16) -> evaluate.EpisodeStats:
        run = jax.jit(
            lambda k: evaluate.evaluate_policy(
                k, self.env, self.params, n_episodes, self.deterministic, self.activation
            )
        )
        return run(key)


def load_trained_policy(out_dir: str | os.PathLike, trial_id: str, seed: int | None = None) -> TrainedPolicy:
    """The final policy of `seed` (default: the trial's first seed) of a stored trial."""
    config = read_json(trial_path(out_dir, trial_id) / "config.json")
    seeds = list(config["seeds"])
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ConfigError(f"seed = {seed!r} is invalid for trial {trial_id}; allowed: its seeds, {seeds}")
    stacked = load_policy_params(out_dir, trial_id)
    state_dict = jax.tree_util.tree_map(lambda x: np.asarray(x)[seeds.index(seed)], stacked)
    env = make(config["env"], config.get("max_episode_steps"))
    settings = policy_settings(config["hparams"])
    template = networks.init_policy(jax.random.PRNGKey(0), env.spec.obs_dim, env.spec.action, settings)
    if "obs_norm" in state_dict:
        stats = state_dict["obs_norm"]
        template.update(
            networks.obs_norm_params(
                stats["mean"], stats["var"], float(stats["clip"]) if "clip" in stats else None
            )
        )
    try:
        params = serialization.from_state_dict(template, state_dict)
    except (ValueError, KeyError) as err:
        raise CorruptResultsError(
            f"saved policy of trial {trial_id} does not match its config: {err}"
        ) from err
    return TrainedPolicy(env, params, settings.activation, settings.deterministic_policy)


def policy_settings(hparams: dict) -> networks.PolicySettings:
    """The policy settings recorded in a trial's resolved hyperparameters."""
    names = {f.name for f in dataclasses.fields(networks.PolicySettings)}
    return networks.PolicySettings(**{k: v for k, v in hparams.items() if k in names})
