"""One stage list drives `esbench reproduce`, its --dry-run and `esbench plan`: a stage added to
stages.STAGES runs, is described and is planned, with no other change."""

import dataclasses
import json

import pytest
from test_protocol import sweep_file

from esbench import cli
from esbench.results import load_protocol, load_summaries
from esbench.runner import stages
from esbench.runner.config import resolve_trial
from esbench.runner.plan import protocol_groups
from esbench.runner.protocol import prepare_protocol
from esbench.runner.sweep_file import load_sweep_file

PROBE_SEEDS = (77,)


class Probe(stages.Stage):
    """A made-up fifth stage: each final trial again on one more seed, after the final and matched stages."""

    name = "probe"

    @staticmethod
    def _spec(trial):
        return dataclasses.replace(trial.spec, seeds=PROBE_SEEDS)

    def trials(self, state):
        return None if state.finals is None else [resolve_trial(self._spec(t)) for t in state.finals]

    def heading(self, state):
        return [f"stage 5, probe: every final trial again on seeds {list(PROBE_SEEDS)}"]

    def rows(self, state):
        return [
            stages.Row(t.spec.env, t.spec.algo, 1, int(state.finished(t)), 1, t.spec.env_steps)
            for t in self.trials(state) or []
        ]

    def planned(self, protocol):
        return [([self._spec(resolve_trial(s)) for s in stages.Final().planned(protocol)[0][0]], 1)]


@pytest.fixture
def with_probe(monkeypatch):
    monkeypatch.setattr(stages, "STAGES", (*stages.STAGES, Probe()))


def test_an_added_stage_reaches_the_run_the_dry_run_and_the_plan(tmp_path, capsys, with_probe):
    path, out = sweep_file(tmp_path), tmp_path / "out"

    assert cli.main(["reproduce", str(path), "--out", str(out), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "stage 5, probe: every final trial again on seeds [77]" in dry
    assert not out.exists()  # a dry run writes nothing

    protocol = prepare_protocol(load_sweep_file(path), out=out)
    planned = [g for g in protocol_groups(protocol) if g.stage == "probe"]
    assert [t.spec.seeds for g in planned for t in g.trials] == [PROBE_SEEDS, PROBE_SEEDS]

    assert cli.main(["reproduce", str(path), "--out", str(out), "--quiet"]) == 0
    record, summaries = load_protocol(out), load_summaries(out)
    assert record["stages"]["probe"] == {"status": "done", "trials": 2, "finished": 2}
    probed = summaries[summaries.seeds.map(tuple) == PROBE_SEEDS]
    finals = {e["trial_id"] for e in record["final"]}
    final_configs = summaries[summaries.trial_id.isin(finals)]
    assert sorted(probed.algo) == sorted(final_configs.algo) == ["eggroll", "openes"]
    for _, row in probed.iterrows():  # the same configuration as its final trial, on the probe's seed
        final = final_configs[final_configs.algo == row.algo].iloc[0]
        assert json.dumps(row.hparams, sort_keys=True) == json.dumps(final.hparams, sort_keys=True)

    capsys.readouterr()
    assert cli.main(["reproduce", str(path), "--out", str(out), "--dry-run"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    probe_at = rows.index(
        ["stage", "5,", "probe:", "every", "final", "trial", "again", "on", "seeds", "[77]"]
    )
    assert [r[3] for r in rows[probe_at + 2 : probe_at + 4]] == ["1", "1"]  # both rows done
