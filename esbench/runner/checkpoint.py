"""Mid-trial checkpoints: the full state of a running group of trials, saved atomically, resumed exactly.

    OUT/checkpoints/<group>/state.msgpack   the algorithm state of every point and seed, as the list of its
                                            pytree leaves (msgpack): parameters, optimiser, PRNG keys,
                                            normalisation statistics, the envs' own states
    OUT/checkpoints/<group>/meta.json       what wrote it (protocol version, trial ids and their configs),
                                            the state's sha256, and every trial's record (rows and counters)

A checkpoint is written under a temporary name and renamed into place, so a
kill at any moment leaves the previous one whole. It is used only if it was
written by the same maths (protocol version) for the same trials (configs),
and its state file is intact (sha256) and fits the compiled program's state;
otherwise one line says why and the trials start afresh. Resuming replays
nothing: the state, the counters and the rows go on from the last chunk
saved, so a resumed trial's metrics and policy are those of an uninterrupted
run (wall-clock times aside).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from esbench.provenance import PROTOCOL_VERSION
from esbench.results.store import write_folder
from esbench.runner.record import TrialRecord

CHECKPOINTS_DIR = "checkpoints"
DEFAULT_SECONDS = 60.0  # without --checkpoint-every: about once a minute of training
_STATE, _META = "state.msgpack", "meta.json"


def group_name(trial_ids) -> str:
    """The folder of a group's checkpoint: the first trial id, and a hash of them all."""
    ids = sorted(trial_ids)
    return f"{ids[0]}-{hashlib.sha1(' '.join(ids).encode()).hexdigest()[:8]}"


def state_to_bytes(state) -> bytes:
    """The leaves of `state` (any pytree: an env suite's own state classes included) as msgpack."""
    return serialization.msgpack_serialize([np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)])


def state_from_bytes(template, data: bytes):
    """`state_to_bytes`'s leaves put back into `template`'s structure; ValueError when they do not fit it."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    stored = serialization.msgpack_restore(data)
    if not isinstance(stored, list) or len(stored) != len(leaves):
        raise ValueError(
            f"{len(stored) if isinstance(stored, list) else 'no'} leaves stored, the state has {len(leaves)}"
        )
    for i, (old, new) in enumerate(zip(stored, leaves)):
        if np.shape(old) != np.shape(new) or np.asarray(old).dtype != np.asarray(new).dtype:
            raise ValueError(
                f"leaf {i} is {np.asarray(old).dtype}{list(np.shape(old))}, the state's "
                f"{np.asarray(new).dtype}{list(np.shape(new))}"
            )
    return jax.tree_util.tree_unflatten(treedef, [np.asarray(leaf) for leaf in stored])


def _configs_hash(trials) -> str:
    return hashlib.sha256(json.dumps([t.config for t in trials], sort_keys=True).encode()).hexdigest()


def _record_to_json(record: TrialRecord) -> dict:
    return {
        k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(record).items()
    }


def _record_from_json(data: dict) -> TrialRecord:
    arrays = {
        "updates": np.int64,
        "env_steps": np.int64,
        "simulated_env_steps": np.int64,
        "diverged": bool,
        "final_eval": np.float64,
        "final_eval_std": np.float64,
    }
    values = {k: (np.asarray(v, arrays[k]) if k in arrays else v) for k, v in data.items()}
    values["seeds"] = tuple(values["seeds"])
    return TrialRecord(**values)


class CheckpointMismatch(Exception):
    """A checkpoint that must not be resumed; the message says why."""


@dataclass
class Checkpointer:
    """Saves a group's checkpoint every `every` chunks (None: every DEFAULT_SECONDS of training) and on request."""

    out_dir: Path
    every: int | None = None
    keep: bool = False

    def folder(self, trials) -> Path:
        return Path(self.out_dir) / CHECKPOINTS_DIR / group_name([t.trial_id for t in trials])

    def due(self, chunk: int, since_last_s: float) -> bool:
        return chunk % self.every == 0 if self.every else since_last_s >= DEFAULT_SECONDS

    def save(self, trials, state, records: list[TrialRecord], compile_s: float) -> Path:
        folder = self.folder(trials)
        state_bytes = state_to_bytes(jax.device_get(state))
        meta = {
            "protocol_version": PROTOCOL_VERSION,
            "trial_ids": [t.trial_id for t in trials],
            "configs_sha256": _configs_hash(trials),
            "state_sha256": hashlib.sha256(state_bytes).hexdigest(),
            "compile_s": compile_s,
            "saved_at": time.time(),
            "records": [_record_to_json(r) for r in records],
        }

        def fill(tmp: Path) -> None:
            (tmp / _STATE).write_bytes(state_bytes)
            (tmp / _META).write_text(json.dumps(meta))

        return write_folder(folder, fill)

    def load(self, trials, template) -> tuple | None:
        """(state, records, compile_s) of the group's checkpoint, or None (absent, or unusable: reported in one
        line)."""
        folder = self.folder(trials)
        if not folder.exists():
            return None
        try:
            return self._read(folder, trials, template)
        except CheckpointMismatch as why:
            print(
                f"checkpoint {folder} not used ({why}); starting {len(trials)} trial(s) afresh",
                file=sys.stderr,
                flush=True,
            )
            return None

    def _read(self, folder: Path, trials, template):
        try:
            meta = json.loads((folder / _META).read_text())
            state_bytes = (folder / _STATE).read_bytes()
        except (OSError, ValueError) as err:
            raise CheckpointMismatch(f"unreadable: {err}") from None
        if meta.get("protocol_version") != PROTOCOL_VERSION:
            raise CheckpointMismatch(
                f"written by protocol version {meta.get('protocol_version')}, "
                f"this esbench runs {PROTOCOL_VERSION}"
            )
        if meta.get("configs_sha256") != _configs_hash(trials):
            raise CheckpointMismatch("written for other trial configs")
        if hashlib.sha256(state_bytes).hexdigest() != meta.get("state_sha256"):
            raise CheckpointMismatch("its state file is truncated or damaged (sha256 differs)")
        try:
            state = state_from_bytes(jax.device_get(template), state_bytes)
            records = [_record_from_json(r) for r in meta["records"]]
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointMismatch(f"does not fit these trials' state: {err}") from None
        return state, records, float(meta.get("compile_s", 0.0))

    def remove(self, trials) -> None:
        if not self.keep:
            shutil.rmtree(self.folder(trials), ignore_errors=True)
