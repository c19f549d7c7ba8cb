"""Drop-in folders: envs/ and algorithms/ files reach every command without a flag; broken ones stop it, named."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from esbench import cli, plugins
from esbench.envs import make, registry
from esbench.validation import ConfigError

ROOT = Path(__file__).resolve().parents[1]

TOY_ENV = """
import jax.numpy as jnp
from esbench.envs import Discrete, EnvSpec, build_env, register


def make_coin():
    spec = EnvSpec(id="dropin/Coin-v0", suite="custom", obs_dim=1, action=Discrete(2), max_episode_steps=5)
    return build_env(spec, lambda key: (jnp.zeros(1), jnp.int32(0)),
                     lambda key, s, a: (jnp.ones(1), s + 1, a.astype(jnp.float32), s + 1 >= 5))


register("dropin/Coin-v0", make_coin)
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_checkout_s_examples_load_without_flags():
    """`esbench envs` in the checkout: the example env listed with its file, no noise; `ars` a choice of `run`."""
    listing = subprocess.run(
        [sys.executable, "-m", "esbench.cli", "envs"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "point/PointMass-v0" in line)
    assert "envs/point_mass.py" in row
    assert (
        next(line for line in listing.stdout.splitlines() if "CartPole-v1" in line)
        .rstrip(" │")
        .endswith("built-in")
    )


def test_a_dropped_in_env_and_its_origin(tmp_path, restore_registries, capsys):
    path = write(tmp_path / "mine", "coin.py", TOY_ENV)
    plugins.load_drop_ins([tmp_path / "mine"])
    assert make("dropin/Coin-v0").spec.obs_dim == 1
    assert plugins.origin("environment", "dropin/Coin-v0") == str(path.resolve())
    assert plugins.origin("environment", "CartPole-v1") == plugins.BUILT_IN
    plugins.load_file(path)  # once per process: a second load (a sweep's plugins: naming it again) is a no-op
    # what a Ray worker replays: the source travels, the file need not exist where it runs
    shipped = plugins.loaded()
    assert (str(path.resolve()), TOY_ENV) in shipped.files
    registry._REGISTRY.pop("dropin/Coin-v0")
    plugins._files.clear()
    path.unlink()
    plugins.replay(shipped)
    assert "dropin/Coin-v0" in registry.registered_ids()


def test_the_current_folder_s_envs_and_algorithms(tmp_path, restore_registries, monkeypatch, capsys):
    write(tmp_path / "envs", "coin.py", TOY_ENV)
    write(tmp_path / "algorithms", "_helper.py", "raise RuntimeError('files starting with _ are not loaded')")
    write(tmp_path / "algorithms", "README.md", "not python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plugins, "DROP_IN_FOLDERS", ("envs", "algorithms"))
    assert cli.main(["envs"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "dropin/Coin-v0" in line)
    assert "envs/coin.py" in row


@pytest.mark.parametrize(
    "text, line, says",
    [
        ("import jax\n\ndef broken(:\n    pass\n", 3, "syntax error"),
        ("x = 1\nraise RuntimeError('boom')\n", 2, "RuntimeError: boom"),
        (
            "from esbench.algorithms import openes, register_algorithm\n\nregister_algorithm('ppo', openes)\n",
            3,
            "the algorithm 'ppo', a name already taken by esbench's built-in 'ppo'",
        ),
        (
            "from esbench.envs import register\n\nregister('CartPole-v1', lambda: None)\n",
            3,
            "the environment 'CartPole-v1', a name already taken by esbench's built-in 'CartPole-v1'",
        ),
    ],
)
def test_a_broken_file_is_named_and_nothing_runs(tmp_path, restore_registries, capsys, text, line, says):
    path = write(tmp_path / "plugins", "bad.py", text)
    with pytest.raises(ConfigError, match=f"{path.resolve()}:{line}: .*") as err:
        plugins.load_folder(tmp_path / "plugins")
    assert says in str(err.value)
    out = tmp_path / "runs"
    code = cli.main(
        [
            "run",
            "--env",
            "CartPole-v1",
            "--algo",
            "eggroll",
            "--env-steps",
            "100",
            "--out",
            str(out),
            "--plugins",
            str(tmp_path / "plugins"),
        ]
    )
    assert code == cli.EXIT_BAD_INPUT and f"bad.py:{line}" in capsys.readouterr().err
    assert not out.exists()


def test_a_clash_between_two_drop_ins_names_both(tmp_path, restore_registries):
    first = write(tmp_path / "a", "coin.py", TOY_ENV)
    second = write(tmp_path / "b", "coin_again.py", TOY_ENV)
    plugins.load_folder(tmp_path / "a")
    with pytest.raises(ConfigError) as err:
        plugins.load_folder(tmp_path / "b")
    assert f"{second.resolve()}:" in str(err.value) and str(first.resolve()) in str(err.value)


def test_a_missing_plugin_folder(tmp_path, restore_registries, capsys):
    assert cli.main(["envs", "--plugins", str(tmp_path / "nowhere")]) == cli.EXIT_BAD_INPUT
    assert "plugin folder" in capsys.readouterr().err


def test_a_sweep_file_s_plugins_key(tmp_path, restore_registries, capsys):
    write(tmp_path / "my_plugins", "coin.py", TOY_ENV)
    sweep = write(
        tmp_path,
        "sweep.yaml",
        """
        plugins: [my_plugins]
        envs: [dropin/Coin-v0]
        algorithms:
          eggroll: {pop_size: 4, rank: 1, layer_size: 4, n_layers: 1}
        trial: {seeds: 1, env_steps: 100, num_logs: 1, eval_episodes: 1}
    """,
    )
    assert cli.main(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "env=dropin/Coin-v0 algo=eggroll" in capsys.readouterr().out
    write(tmp_path, "bad.yaml", "plugins: my_plugins\nenvs: [CartPole-v1]\n")
    assert cli.main(["sweep", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    assert "plugins = 'my_plugins' is invalid" in capsys.readouterr().err
