"""Faults of the machine end in one line with their own exit code, and lose nothing.

A full disk is injected at every write site (trial folder, checkpoint, protocol record, report files,
live logs, videos): the write fails as a full disk fails, after part of the file reached it. Each test
checks that no half-written file is left, that what was finished is kept, and that the same command,
rerun once space is back, gives exactly the results of an uninterrupted run.
"""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import NON_TIME_COLUMNS

from esbench import cli
from esbench.faults import RESUME, MachineFault, fault_line
from esbench.results import load
from esbench.results.store import PROTOCOL_FILE, TMP_PREFIX, write_folder
from esbench.runner import backends, checkpoint
from esbench.runner.checkpoint import CHECKPOINTS_DIR
from esbench.runner.protocol_record import write_record

# Two trials, 3 chunks of EGGROLL on CartPole, two seeds each.
TWO_TRIALS = """
envs: [CartPole-v1]
algorithms:
  eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
search: {grid: {eggroll: {learning_rate: [0.01, 0.1]}}}
trial: {seeds: 2, env_steps: 960, num_logs: 3, eval_episodes: 2, max_episode_steps: 20}
"""
HALF_A_FILE = b"half a file"


def disk_full(monkeypatch, owner, name, path_of=None, when=lambda path: True, nth=1) -> list:
    """Make `owner.name` fail as a full disk does on its `nth` call that `when(path)` accepts: part of the
    file is written (when `path_of(args)` names it), then OSError ENOSPC. Returns the paths it failed on."""
    original, seen, failed = getattr(owner, name), [], []

    def full(*args, **kwargs):
        path = Path(path_of(args)) if path_of is not None else None
        if when(path):
            seen.append(path)
            if len(seen) == nth:
                if path is not None:
                    with open(path, "wb") as f:
                        f.write(HALF_A_FILE)
                failed.append(path)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else str(path))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, full)
    return failed


def sweep(path, out, *extra) -> int:
    # One trial per group: every run, a resumed one included, compiles the same program shapes (cached).
    return cli.main(["sweep", str(path), "--out", str(out), "--quiet", "--no-vectorize", *extra])


def one_line(capsys) -> str:
    """The command's stderr, which must be one line and no traceback."""
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders, and files with only part of their content, anywhere under `folder`."""
    return [
        p
        for p in folder.rglob("*")
        if p.name.startswith(TMP_PREFIX) or (p.is_file() and p.read_bytes() == HALF_A_FILE)
    ]


def metrics(out) -> pd.DataFrame:
    return (
        load(out)
        .sort_values(["trial_id", "seed", "log_point"])
        .reset_index(drop=True)[["trial_id", *NON_TIME_COLUMNS]]
    )


def assert_same_results(out, expected) -> None:
    """Metrics (timings aside) and final policies equal, bit for bit."""
    pd.testing.assert_frame_equal(metrics(out), metrics(expected), check_exact=True)
    policies = [
        {p.name: (p / "policy.msgpack").read_bytes() for p in (folder / "trials").glob("[!.]*")}
        for folder in (out, expected)
    ]
    assert policies[0] == policies[1] and len(policies[0]) == 2


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The sweep run straight through: what every faulted-then-resumed run must reproduce."""
    folder = tmp_path_factory.mktemp("straight")
    (folder / "sweep.yaml").write_text(TWO_TRIALS)
    assert sweep(folder / "sweep.yaml", folder / "out") == 0
    return folder / "out"


@pytest.fixture
def sweep_file(write_sweep):
    return write_sweep(TWO_TRIALS)


def test_disk_full_writing_a_trial_keeps_the_finished_one_and_the_rerun_completes_the_sweep(
    tmp_path, sweep_file, uninterrupted, monkeypatch, capsys
):
    out = tmp_path / "out"
    failed = disk_full(monkeypatch, pd.DataFrame, "to_parquet", path_of=lambda a: a[1], nth=2)
    assert sweep(sweep_file, out) == cli.EXIT_MACHINE_FAULT
    line = one_line(capsys)
    assert f"{failed[0]}: no space left on the device (ENOSPC)" in line
    assert f"1 of 2 trials finished and stored in {out}" in line and line.endswith(f"free space, {RESUME}")
    assert len(load(out).trial_id.unique()) == 1 and not leftovers(out)

    monkeypatch.undo()  # space is back
    assert sweep(sweep_file, out) == 0
    assert "ran 1 trial(s), skipped 1 already finished" in capsys.readouterr().out
    assert_same_results(out, uninterrupted)


def test_disk_full_saving_a_checkpoint_keeps_the_last_good_one_and_the_rerun_resumes_from_it(
    tmp_path, sweep_file, uninterrupted, monkeypatch, capsys
):
    out = tmp_path / "out"
    disk_full(
        monkeypatch,
        Path,
        "write_bytes",
        path_of=lambda a: a[0],
        when=lambda p: p.name == "state.msgpack",
        nth=2,
    )
    assert sweep(sweep_file, out, "--checkpoint-every", "1") == cli.EXIT_MACHINE_FAULT
    assert "no space left on the device" in one_line(capsys)
    (kept,) = (out / CHECKPOINTS_DIR).iterdir()
    assert [r["log_point"] for r in json.loads((kept / "meta.json").read_text())["records"]] == [1]
    assert not leftovers(out) and load(out).empty

    monkeypatch.undo()
    resumed_at = []
    load_checkpoint = checkpoint.Checkpointer.load

    def load_and_note(self, *args):
        resumed = load_checkpoint(self, *args)
        resumed_at.append(None if resumed is None else [r.log_point for r in resumed[1]])
        return resumed

    monkeypatch.setattr(checkpoint.Checkpointer, "load", load_and_note)
    assert sweep(sweep_file, out, "--checkpoint-every", "1") == 0
    assert resumed_at == [[1], None]  # the first trial went on from chunk 1, the second started
    assert_same_results(out, uninterrupted)


def test_disk_full_writing_a_live_log_stops_with_the_last_checkpoint_and_the_rerun_resumes(
    tmp_path, sweep_file, uninterrupted, monkeypatch, capsys
):
    from tensorboardX.event_file_writer import EventsWriter

    out = tmp_path / "out"
    checkpointed = lambda _: any((out / CHECKPOINTS_DIR).glob("*/meta.json"))  # noqa: E731
    disk_full(monkeypatch, EventsWriter, "write_event", when=checkpointed)
    assert sweep(sweep_file, out, "--checkpoint-every", "1", "--log", "tensorboard") == cli.EXIT_MACHINE_FAULT
    assert "no space left on the device" in one_line(capsys)
    assert (out / CHECKPOINTS_DIR).is_dir() and not leftovers(out)

    monkeypatch.undo()
    assert sweep(sweep_file, out, "--checkpoint-every", "1", "--log", "tensorboard") == 0
    assert_same_results(out, uninterrupted)


def test_a_folder_swap_that_fails_puts_the_previous_copy_back(tmp_path, monkeypatch):
    final = tmp_path / "checkpoint"
    write_folder(final, lambda tmp: (tmp / "state").write_text("previous"))
    rename = os.rename

    def rename_but_not_into_place(src, dst):  # moving the old copy aside works, the new one's rename fails
        if Path(dst) == final and Path(src).name != final.name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(src), None, str(dst))
        rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_but_not_into_place)
    with pytest.raises(OSError):
        write_folder(final, lambda tmp: (tmp / "state").write_text("next"))
    assert (final / "state").read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == [
        final.name
    ]


def test_disk_full_rewriting_the_protocol_record_keeps_the_previous_one_whole(tmp_path, monkeypatch):
    record = {
        "envs": ["CartPole-v1"],
        "algorithms": ["eggroll"],
        "env_steps": {},
        "selection": [],
        "final": [],
        "stages": {"search": {"status": "running"}},
    }
    write_record(tmp_path, record)
    before = (tmp_path / PROTOCOL_FILE).read_text()
    failed = disk_full(
        monkeypatch, Path, "write_text", path_of=lambda a: a[0], when=lambda p: p.name == PROTOCOL_FILE
    )
    with pytest.raises(OSError):
        write_record(tmp_path, {**record, "stages": {"search": {"status": "done"}}})
    assert failed and (tmp_path / PROTOCOL_FILE).read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [PROTOCOL_FILE]


@pytest.mark.parametrize("site", ["figure", "summary.json"])
def test_disk_full_writing_a_report_leaves_no_half_written_file(
    tmp_path, uninterrupted, monkeypatch, capsys, site
):
    from matplotlib.figure import Figure

    out = tmp_path / "report"
    if site == "figure":
        failed = disk_full(monkeypatch, Figure, "savefig", path_of=lambda a: a[1], nth=2)
    else:
        failed = disk_full(
            monkeypatch, Path, "write_text", path_of=lambda a: a[0], when=lambda p: p.name == site
        )
    command = ["report", str(uninterrupted), "--out", str(out), "--bootstrap", "10"]
    assert cli.main(command) == cli.EXIT_MACHINE_FAULT
    line = one_line(capsys)
    assert "no space left on the device" in line and f"the results in {uninterrupted} are unchanged" in line
    assert failed and not (out / Path(failed[0]).name).exists() and not leftovers(out)

    monkeypatch.undo()
    assert cli.main(command) == 0
    assert (out / "report.md").is_file() and (out / "summary.json").is_file() and not leftovers(out)


def test_disk_full_writing_a_video_leaves_no_file(tmp_path, uninterrupted, monkeypatch, capsys):
    from esbench import video

    get_writer = video.imageio.get_writer

    def writer_that_fills_the_disk(
        path, *args, **kwargs
    ):  # a few frames reach the file, then the disk is full
        writer = get_writer(path, *args, **kwargs)
        disk_full(monkeypatch, writer, "append_data", nth=3)
        return writer

    monkeypatch.setattr(video.imageio, "get_writer", writer_that_fills_the_disk)
    trial_id = load(uninterrupted).trial_id.iloc[0]
    clip = tmp_path / "clips" / "clip.gif"
    assert cli.main(["render", str(uninterrupted), trial_id, "--out", str(clip)]) == cli.EXIT_MACHINE_FAULT
    assert "no space left on the device" in one_line(capsys)
    assert list(clip.parent.iterdir()) == []


def test_xla_out_of_memory_in_a_trial_stops_the_sweep_in_one_line(tmp_path, sweep_file, monkeypatch, capsys):
    from jax.errors import JaxRuntimeError

    def out_of_memory(*args, **kwargs):
        raise JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 68719476736 bytes.\nBufferAssignment"
        )

    monkeypatch.setattr(backends, "run_group", out_of_memory)
    assert sweep(sweep_file, tmp_path / "out") == cli.EXIT_MACHINE_FAULT
    line = one_line(capsys)
    assert "the accelerator ran out of memory (RESOURCE_EXHAUSTED: Out of memory" in line
    assert "0 of 2 trials finished and stored" in line and "--no-vectorize" in line


@pytest.mark.parametrize("debug", ["--debug", "ESBENCH_DEBUG=1"])
def test_debug_shows_the_traceback_above_the_line(tmp_path, sweep_file, monkeypatch, capsys, debug):
    (tmp_path / "afile").write_text("")
    if debug == "ESBENCH_DEBUG=1":
        monkeypatch.setenv("ESBENCH_DEBUG", "1")
    flags = ["--debug"] if debug == "--debug" else []
    assert sweep(sweep_file, tmp_path / "afile" / "out", *flags) == cli.EXIT_MACHINE_FAULT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):" and "NotADirectoryError" in "\n".join(err)
    assert err[-1].startswith("machine fault: ")


def test_a_file_that_is_not_text_is_named_in_one_line(tmp_path, capsys):
    (tmp_path / "sweep.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    assert (
        cli.main(["sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out")])
        == cli.EXIT_MACHINE_FAULT
    )
    line = one_line(capsys)
    assert (
        f"sweep file {tmp_path / 'sweep.yaml'}: not a text file" in line
        and "nothing was run or written" in line
    )
    assert not (tmp_path / "out").exists()


def test_a_path_through_a_file_is_a_machine_fault_naming_the_path(tmp_path, sweep_file, capsys):
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "out"
    assert sweep(sweep_file, out) == cli.EXIT_MACHINE_FAULT
    line = one_line(capsys)
    assert "a part of the path is a file, not a folder (ENOTDIR)" in line and str(out) in line


def test_any_other_error_is_a_bug_and_keeps_its_traceback(tmp_path, sweep_file, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(backends, "run_group", bug)
    monkeypatch.setattr(backends, "run_local", bug)
    with pytest.raises(ZeroDivisionError):
        sweep(sweep_file, tmp_path / "out")


def test_every_file_system_fault_is_one_line_naming_the_path_its_own_cause_and_the_way_on():
    codes = [
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.EIO,
        errno.EMFILE,
    ]
    lines = [
        fault_line(OSError(code, os.strerror(code), "/data/out/x"), "2 of 3 trials stored in /data/out")
        for code in codes
    ]
    assert len(set(lines)) == len(codes)
    for code, line in zip(codes, lines):
        what, kept, how = line.split("; ")
        assert what.startswith("/data/out/x: ") and what.endswith(f"({errno.errorcode[code]})")
        assert kept == "2 of 3 trials stored in /data/out" and how.endswith(RESUME) and "\n" not in line


def test_a_machine_fault_keeps_its_own_line_and_other_errors_are_not_machine_faults():
    assert fault_line(MachineFault("the memory guard's line"), "ignored") == "the memory guard's line"
    assert fault_line(ValueError("a bug")) is None and fault_line(KeyError("x")) is None


def test_errors_without_a_file_name_quote_the_library_message():
    err = OSError(
        errno.ENOSPC, "Failed to write /x/metrics.parquet. Detail: [errno 28] No space left on device"
    )
    assert "Failed to write /x/metrics.parquet" in fault_line(err)


@pytest.mark.parametrize(
    "command",
    [
        ["envs"],
        ["run", "--env", "CartPole-v1", "--algo", "eggroll", "--env-steps", "1"],
        ["sweep", "s.yaml", "--out", "o"],
        ["reproduce", "s.yaml", "--out", "o"],
        ["report", "r"],
        ["render", "r", "t"],
        ["bench"],
    ],
)
def test_debug_combines_with_every_command_before_or_after_it(command):
    parser = cli.build_parser()
    for argv in ([*command, "--debug"], ["--debug", *command]):
        assert parser.parse_args(argv).func.__module__ == f"esbench.cli.{command[0]}"


def test_a_debug_variable_that_is_neither_on_nor_off_is_bad_input(monkeypatch, capsys):
    monkeypatch.setenv("ESBENCH_DEBUG", "maybe")
    assert cli.main(["envs"]) == cli.EXIT_BAD_INPUT
    assert "ESBENCH_DEBUG='maybe' is invalid" in one_line(capsys)


# In a Ray worker, SIGKILL this process after a group's first chunk: once for the group of learning rate 0.01
# (Ray retries it and the retry finishes), at every attempt for the group of learning rate 0.1 (it fails all
# of Ray's retries). Each kill is noted first in killed-<learning rate>.txt beside this file.
KILL_WORKERS = """
import os, signal
from pathlib import Path
from esbench.runner import backends, record

run_group, chunk, running = backends.run_group, record.TrialRecord.chunk, []

def noted_run_group(trials, *args, **kwargs):
    running[:] = [trials[0].spec.hparams["learning_rate"]]
    return run_group(trials, *args, **kwargs)

def chunk_then_die(self, *args, **kwargs):
    rows = chunk(self, *args, **kwargs)
    kills = Path(__file__).parent / f"killed-{running[0]}.txt"
    if running[0] == 0.1 or not kills.exists():
        with open(kills, "a") as f:
            f.write(f"{os.getpid()}\\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return rows

backends.run_group, record.TrialRecord.chunk = noted_run_group, chunk_then_die
"""


@pytest.mark.slow  # Ray's start and five worker processes that each import JAX: minutes on a 2-core CPU
def test_a_killed_ray_worker_is_retried_to_the_local_result_and_a_group_out_of_retries_fails_alone(
    tmp_path, sweep_file, uninterrupted
):
    pytest.importorskip("ray")
    (tmp_path / "kill_workers.py").write_text(KILL_WORKERS)
    command = [sys.executable, "-m", "esbench.cli", "sweep", str(sweep_file), "--quiet", "--no-vectorize"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "ray"), "--backend", "ray", "--import", "kill_workers"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    assert "ran 1 trial(s)" in done.stdout
    recovered = len((tmp_path / "killed-0.01.txt").read_text().split())
    out_of_retries = len((tmp_path / "killed-0.1.txt").read_text().split())
    assert (recovered, out_of_retries) == (1, 4)  # Ray's default: 3 retries of a task whose worker died

    local, ray = metrics(uninterrupted), metrics(tmp_path / "ray")
    stored = set(ray.trial_id)
    (failed,) = set(local.trial_id) - stored
    (failure,) = [line for line in done.stderr.splitlines() if line.startswith("FAILED")]
    assert failure.startswith(f"FAILED {failed}: ")  # reported per trial, the other group stored
    pd.testing.assert_frame_equal(
        ray, local[local.trial_id.isin(stored)].reset_index(drop=True), check_exact=True
    )
