"""A damaged results folder is named, one esbench line per trial, and never changed: `compare` lists its
trials as damaged and `--fail-on-differ` fails on them."""

from test_compare import write_trial

from esbench import cli
from esbench.results import trial_path


def tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_compare_names_a_truncated_summary_as_damaged_and_fails_on_it(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        write_trial(folder, "same-id", [3, 4, 5])
        write_trial(folder, "other-id", [1, 2, 3], env="Pendulum-v1")
    summary = trial_path(b, "other-id") / "summary.json"
    summary.write_bytes(summary.read_bytes()[:5])
    before = tree(b)

    assert cli.main(["compare", str(a), str(b)]) == 0  # without --fail-on-differ it reports and exits 0
    out, err = capsys.readouterr()
    assert "damaged in B: other-id: " in out and "summary.json" in out
    assert "0 only in A, 0 only in B" in out  # a damaged trial is not a missing one
    assert len(err.splitlines()) == 1 and err.startswith(
        "esbench: left out trial other-id: "
    )  # not a warning
    assert cli.main(["compare", str(a), str(b), "--fail-on-differ"]) == 1
    assert tree(b) == before  # nothing in the damaged folder changed


def test_the_report_lists_unreadable_trials_and_trials_that_could_not_run(tmp_path, capsys):
    from conftest import tiny_spec

    from esbench.results import ResultStore
    from esbench.results.store import write_failure
    from esbench.runner import run_trials

    out = tmp_path / "out"
    specs = [tiny_spec("eggroll", seeds=(0, 1)), tiny_spec("openes", seeds=(0, 1))]
    outcome = run_trials(specs, ResultStore(out))
    damaged_id = outcome.ran[1]
    metrics = trial_path(out, damaged_id) / "metrics.parquet"
    metrics.write_bytes(metrics.read_bytes()[:64])
    config = {"trial_id": "CartPole_v1_ppo-0000000000", "env": "CartPole-v1", "algo": "ppo"}
    write_failure(out, config, "memory", "memory: it cannot fit 1 kB")
    before = tree(out)

    assert cli.main(["report", str(out), "--out", str(tmp_path / "plots")]) == 0
    capsys.readouterr()
    report = (tmp_path / "plots" / "report.md").read_text()
    assert "Left out: 1 unreadable trial (the folder is unchanged):" in report
    assert f"- `{damaged_id}`: " in report and "metrics.parquet" in report
    assert "1 trial could not run:" in report
    assert "- `CartPole_v1_ppo-0000000000` (memory): memory: it cannot fit 1 kB" in report
    assert tree(out) == before
