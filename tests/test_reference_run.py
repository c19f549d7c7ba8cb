"""The committed reference run (results/cpu, plots/cpu: the README's main job on this project's CPU) still loads,
still matches what today's code and sweep file would run (so a change of maths shows as a stale reference), and
learned: every (env, algorithm) final mean is clear of its untrained policy."""

import dataclasses
import json
from pathlib import Path

from esbench import cli
from esbench.results import ResultStore, load, load_protocol, load_summaries
from esbench.runner.config import TrialSpec, resolve_trial
from esbench.runner.protocol import prepare_protocol
from esbench.runner.protocol_description import describe_protocol
from esbench.runner.sweep_file import load_sweep_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS, PLOTS = ROOT / "results" / "cpu", ROOT / "plots" / "cpu"
REGENERATE = "see README, 'The reference run': rerun its command to regenerate results/cpu and plots/cpu"


def test_every_stored_trial_is_the_trial_todays_code_would_run():
    summaries = load_summaries(RESULTS)
    assert len(summaries) >= 100
    for folder in sorted((RESULTS / "trials").iterdir()):
        if folder.name.startswith("."):
            continue
        config = json.loads((folder / "config.json").read_text())
        fields = {f.name for f in dataclasses.fields(TrialSpec)} - {"num_gpus"}
        spec = TrialSpec(**{k: tuple(v) if k == "seeds" else v for k, v in config.items() if k in fields})
        again = resolve_trial(spec).config
        assert again == config, (
            f"{folder.name} is stale: today's code resolves it to {again['trial_id']} ({REGENERATE})"
        )


def test_the_sweep_file_still_describes_the_reference_run_as_finished():
    protocol = prepare_protocol(load_sweep_file(ROOT / "sweeps" / "paper16.yaml"), "cpu", out=RESULTS)
    text = describe_protocol(protocol, ResultStore(RESULTS))
    record = load_protocol(RESULTS)
    for entry in record["final"] + record["matched_trials"]:
        assert entry["trial_id"] in text, (
            f"{entry['trial_id']} is not what today's protocol runs ({REGENERATE})"
        )
    assert all(stage["status"] == "done" for stage in record["stages"].values())


def test_the_reference_report_rebuilds_and_every_algorithm_learned(tmp_path):
    assert load(RESULTS)["trial_id"].nunique() >= 100
    assert cli.main(["report", str(RESULTS), "--out", str(tmp_path / "plots"), "--bootstrap", "200"]) == 0
    summary = json.loads((tmp_path / "plots" / "summary.json").read_text())
    committed = json.loads((PLOTS / "summary.json").read_text())
    assert summary["final_return"] == committed["final_return"]
    assert summary["comparison_line"] == committed["comparison_line"]
    assert summary["matched_line"] == committed["matched_line"]
    record = load_protocol(RESULTS)
    assert summary["learned"]["n"] == len(record["envs"]) * len(record["algorithms"])
    unclear = [(c["env"], c["algo"]) for c in summary["learned"]["cells"] if not c["clear"]]
    assert not unclear, unclear
