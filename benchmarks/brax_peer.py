"""Brax's own PPO beside esbench's on one brax env, at the same env steps and a comparable network.

    python benchmarks/brax_peer.py results/learn16 --out benchmarks/results/brax_peer_cpu.json

The settings are the learn16 budget's PPO trial of the env (sweeps/paper16.yaml), mapped to
`brax.training.agents.ppo.train`'s arguments: the same env steps per seed, envs, unroll length,
epochs, minibatches, learning rate, discount, GAE lambda, clipping, entropy and value coefficients,
gradient clipping, observation normalisation, hidden layers, and a greedy evaluation of 1000-step
episodes; both treat a time limit as an episode's end (brax's `bootstrap_on_timeout=False`, esbench's
`bootstrap_truncation=False`). What does not match: brax's networks use swish (esbench's the paper's
`pqn`), and brax's policy is a tanh-squashed Gaussian (esbench's a Gaussian, clipped to the bounds).

It prints, per seed and side, the final greedy return and the env steps per second of training
(brax: its own `training/sps`; esbench: the trial summary's throughput), and writes them as JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def esbench_side(results: Path, env: str) -> tuple[dict, dict]:
    """The learn16 PPO trial of `env`: its hyperparameters and its summary (final returns, throughput)."""
    from esbench.results import load_summaries

    rows = load_summaries(results)
    rows = rows[(rows.env == env) & (rows.algo == "ppo")]
    if len(rows) != 1:
        raise SystemExit(f"error: {results} holds {len(rows)} PPO trials of {env}; expected 1 (learn16)")
    row = rows.iloc[0]
    return dict(row.hparams), {
        "env_steps_per_seed": int(row.budget),
        "seeds": list(row.seeds),
        "final_return": {int(k): float(v) for k, v in row.final_eval_return.items()},
        "env_steps_per_s": float(row.throughput_sps),
        "run_s": float(row.run_s),
        "compile_s": float(row.compile_s),
    }


def brax_kwargs(h: dict, env_steps: int) -> dict:
    """`ppo.train` keywords that match esbench's PPO hyperparameters `h`."""
    from brax.training.agents.ppo import networks as ppo_networks

    layers = (h["layer_size"],) * h["n_layers"]
    per_minibatch = h["num_envs"] // h["num_minibatches"]  # brax's batch_size counts unrolls per minibatch
    return dict(
        num_timesteps=env_steps,
        episode_length=1000,
        num_envs=h["num_envs"],
        unroll_length=h["num_steps"],
        batch_size=per_minibatch,
        num_minibatches=h["num_minibatches"],
        num_updates_per_batch=h["num_epochs"],
        learning_rate=h["learning_rate"],
        discounting=h["gamma"],
        gae_lambda=h["gae_lambda"],
        clipping_epsilon=h["clip_eps"],
        entropy_cost=h["ent_coef"],
        vf_loss_coefficient=h["vf_coef"],
        max_grad_norm=h["max_grad_norm"],
        normalize_observations=bool(h["normalize_obs"]),
        network_factory=functools.partial(
            ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=layers, value_hidden_layer_sizes=layers
        ),
        num_evals=6,
        num_eval_envs=32,
        deterministic_eval=True,
    )


def brax_side(name: str, kwargs: dict, seeds: list[int]) -> dict:
    import brax.envs
    from brax.training.agents.ppo import train as ppo

    env = brax.envs.get_environment(name)
    out = {"final_return": {}, "env_steps_per_s": {}, "wall_s": {}, "curve": {}}
    for seed in seeds:
        curve = []
        t = time.perf_counter()
        ppo.train(
            environment=env,
            seed=seed,
            progress_fn=lambda step, m, curve=curve: curve.append(
                (int(step), float(m["eval/episode_reward"]), float(m.get("training/sps", float("nan"))))
            ),
            **kwargs,
        )
        out["wall_s"][seed] = time.perf_counter() - t
        out["curve"][seed] = curve
        out["final_return"][seed] = curve[-1][1]
        out["env_steps_per_s"][seed] = curve[-1][2]
        print(f"brax seed {seed}: return {curve[-1][1]:.1f}, {curve[-1][2]:,.0f} env steps/s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a learn16 results folder (esbench's side)")
    parser.add_argument("--env", default="brax/inverted_double_pendulum")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "brax_peer_cpu.json")
    args = parser.parse_args()
    import brax

    hparams, ours = esbench_side(args.results, args.env)
    kwargs = brax_kwargs(hparams, ours["env_steps_per_seed"])
    theirs = brax_side(args.env.removeprefix("brax/"), kwargs, ours["seeds"])
    record = {
        "env": args.env,
        "machine": platform.processor() or platform.machine(),
        "brax_version": brax.__version__,
        "brax_settings": {k: v for k, v in kwargs.items() if k != "network_factory"}
        | {"hidden_layers": [hparams["layer_size"]] * hparams["n_layers"]},
        "esbench": ours,
        "brax": theirs,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for seed in ours["seeds"]:
        print(
            f"seed {seed}: esbench {ours['final_return'][seed]:.1f} | brax {theirs['final_return'][seed]:.1f}"
        )
    print(
        f"env steps/s: esbench {ours['env_steps_per_s']:,.0f} (its {len(ours['seeds'])} seeds as one program) | "
        f"brax {sum(theirs['env_steps_per_s'].values()) / len(ours['seeds']):,.0f} (one seed a run)"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
