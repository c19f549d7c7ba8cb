"""One ES generation's population forward pass and its update, timed per method.

The paper's Figure 2a measure: a batch of observations, one per population
member, goes through the policy MLP (`depth` layers of `width` x `width`),

    inference     x W^T for the whole population (no noise): the reference
    eggroll_r{r}  es.population_map with eggroll.MATRIX_NOISE (rank r)
    openes        es.population_map with openes.MATRIX_NOISE (W + sigma E per member)

and every method's throughput is divided by pure inference's, measured on
the same observations in the same process. Per ES method three phases are
timed, each its own compiled program (so their costs are seen apart):

    noise    es.draw_noise: the generation's noise (drawn once per generation, reused every env step)
    forward  es.population_map: one env step of the whole population, noise given
    update   es.estimate_update: the gradient estimate from N fitnesses, noise given

Only the algorithms' own public functions run here; nothing is reimplemented.
`measure` returns the records and, per (width, population), their ratios
(`forward_summary`: the payload's "summary").
OpenES configurations whose per-member matrices (N m n 4 bytes per layer)
exceed `openes_mem_cap_gib` are recorded as skipped instead of run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from statistics import median
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from esbench.algorithms import eggroll, es, networks, openes
from esbench.bench.measure import AT_LEAST_ONE, distinct, failure_reason, memory_report
from esbench.validation import rule, validate

PHASES = ("forward", "noise", "update")
BYTES_PER_FLOAT = 4
MAX_INNER = 1000


@dataclasses.dataclass(frozen=True)
class ForwardSettings:
    """The sweep and its timing; the defaults are the quick mode (a 2-core CPU in minutes)."""

    pop_sizes: tuple[int, ...] = dataclasses.field(
        default=(256, 512, 1024),
        metadata=rule(
            lambda v: distinct(v) and all(n >= 2 and n % 2 == 0 for n in v),
            "one or more distinct even integers >= 2 (antithetic pairs)",
        ),
    )
    widths: tuple[int, ...] = dataclasses.field(
        default=(256, 1024),
        metadata=rule(lambda v: distinct(v) and all(w >= 1 for w in v), "one or more distinct integers >= 1"),
    )
    ranks: tuple[int, ...] = dataclasses.field(
        default=(1, 4, 16),
        metadata=rule(lambda v: distinct(v) and all(r >= 1 for r in v), "one or more distinct integers >= 1"),
    )
    depth: int = dataclasses.field(default=3, metadata=AT_LEAST_ONE)
    repeats: int = dataclasses.field(default=5, metadata=AT_LEAST_ONE)
    warmup: int = dataclasses.field(
        default=1,
        metadata=rule(lambda v: v >= 1, "an integer >= 1 (the last warm-up call sizes the timing loop)"),
    )
    # a timed repeat loops a short program until it has run this long
    min_time_s: float = dataclasses.field(default=0.1, metadata=rule(lambda v: v >= 0, "a number >= 0"))
    openes_mem_cap_gib: float = dataclasses.field(
        default=1.0, metadata=rule(lambda v: v >= 0, "a number >= 0")
    )
    activation: networks.ActivationName = "pqn"
    sigma: float = dataclasses.field(default=0.1, metadata=rule(lambda v: v > 0, "a number > 0"))
    seed: int = 0

    @property
    def openes_mem_cap_bytes(self) -> int:
        return int(self.openes_mem_cap_gib * 2**30)

    def validate(self, owner: str = "bench.forward") -> None:
        validate(self, owner)


# The full mode (for a GPU): where it differs from the defaults.
FULL = dict(
    pop_sizes=(256, 1024, 4096, 16384),
    widths=(256, 1024, 4096),
    repeats=10,
    warmup=2,
    min_time_s=0.05,
    openes_mem_cap_gib=8.0,
)


@dataclasses.dataclass(frozen=True)
class Method:
    label: str  # "inference", "eggroll_r4", "openes"
    name: str  # "inference", "eggroll", "openes"
    rank: Optional[int] = None

    def es_parts(self, pop_size: int, settings: ForwardSettings) -> tuple[es.ESConfig, es.MatrixNoise]:
        if self.name == "eggroll":
            return eggroll.Config(pop_size=pop_size, rank=self.rank), eggroll.MATRIX_NOISE
        return openes.Config(pop_size=pop_size), openes.MATRIX_NOISE


def methods(settings: ForwardSettings) -> list[Method]:
    return (
        [Method("inference", "inference")]
        + [Method(f"eggroll_r{r}", "eggroll", r) for r in settings.ranks]
        + [Method("openes", "openes")]
    )


# ---------------------------------------------------------------------------
# Timing


@dataclasses.dataclass
class Program:
    """One compiled program under measurement, and the record its numbers go to."""

    record: dict
    compiled: Any
    args: tuple
    inner: int = 1  # calls per timed repeat (short programs run several times, timed together)

    def call(self):
        return jax.block_until_ready(self.compiled(*self.args))

    def seconds_per_call(self) -> float:
        start = time.perf_counter()
        out = None
        for _ in range(self.inner):
            out = self.compiled(*self.args)  # dispatched back to back, as in a training loop
        jax.block_until_ready(out)
        return (time.perf_counter() - start) / self.inner


def compile_program(record: dict, fn: Callable, args: tuple) -> Program:
    """jit(fn).lower(args).compile(), its seconds recorded apart from the run time."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    record["compile_s"] = time.perf_counter() - start
    record["memory"] = memory_report(compiled)
    return Program(record, compiled, args)


def _fail(record: dict, err: Exception) -> None:
    record.update(status="failed", reason=failure_reason(err), times_s=[], median_s=None, samples_per_s=None)


def time_round_robin(programs: list[Program], settings: ForwardSettings) -> None:
    """Warm up every program, then time them in turns: repeat k of every method runs before repeat k+1 of any.

    On a shared machine the load drifts; taking turns exposes every method to
    the same drift, so the ratios between methods stay meaningful. The last
    warm-up call sets how many calls one repeat times (at least `min_time_s`).
    """
    alive = list(programs)
    for program in list(alive):
        try:
            for _ in range(settings.warmup):
                start = time.perf_counter()
                program.call()
                elapsed = time.perf_counter() - start
            if settings.min_time_s > 0:
                program.inner = min(MAX_INNER, max(1, math.ceil(settings.min_time_s / max(elapsed, 1e-9))))
        except Exception as err:  # e.g. out of device memory at run time
            _fail(program.record, err)
            alive.remove(program)
    for _ in range(settings.repeats):
        for program in list(alive):
            try:
                program.record["times_s"].append(program.seconds_per_call())
            except Exception as err:
                _fail(program.record, err)
                alive.remove(program)
    for program in alive:
        record = program.record
        record["inner_calls"] = program.inner
        record["median_s"] = median(record["times_s"])
        record["samples_per_s"] = record["pop_size"] / record["median_s"] if record["median_s"] > 0 else None
        peak = memory_report(program.compiled)["device_peak_bytes_in_use"]
        if peak is not None:
            record["memory"]["device_peak_bytes_in_use"] = peak


# ---------------------------------------------------------------------------
# The programs


def inference_forward(activation: str) -> Callable:
    def forward(params, x):
        return networks.mlp(params["layers"], x, activation)

    return forward


def population_forward(cfg, matrix_noise, activation: str) -> Callable:
    def member(member_params, matmul, x):
        return networks.mlp(member_params["layers"], x, activation, matmul)

    def forward(params, noise, x, sigma):
        return es.population_map(member, params, noise, sigma, cfg, matrix_noise, x)

    return forward


def noise_draw(cfg, matrix_noise, n_pairs: int) -> Callable:
    def draw(root, generation, params):
        return es.draw_noise(root, generation, params, n_pairs, cfg, matrix_noise)

    return draw


def gradient_estimate(cfg, matrix_noise) -> Callable:
    def update(params, noise, fitness, sigma):
        return es.estimate_update(params, noise, fitness, sigma, cfg, matrix_noise)

    return update


# ---------------------------------------------------------------------------
# The sweep


def openes_matrix_bytes(pop_size: int, width: int) -> int:
    """Bytes of one layer's per-member matrices W + sigma E over the population (N m n floats)."""
    return pop_size * width * width * BYTES_PER_FLOAT


def skip_reason(method: Method, pop_size: int, width: int, settings: ForwardSettings) -> Optional[str]:
    if method.name != "openes":
        return None
    need = openes_matrix_bytes(pop_size, width)
    if need > settings.openes_mem_cap_bytes:
        cap = settings.openes_mem_cap_bytes
        return (
            f"OpenES materialises N*m*n*4 = {pop_size}*{width}*{width}*4 = {need:,} bytes ({need / 2**30:.2f} GiB) "
            f"per layer, above the cap of {cap:,} bytes ({cap / 2**30:.2f} GiB, --openes-mem-cap-gib)"
        )
    return None


def _record(method: Method, phase: str, pop_size: int, width: int, settings: ForwardSettings) -> dict:
    return {
        "method": method.label,
        "algorithm": method.name,
        "rank": method.rank,
        "phase": phase,
        "pop_size": pop_size,
        "width": width,
        "depth": settings.depth,
        "status": "ok",
        "reason": None,
        "compile_s": None,
        "inner_calls": None,
        "times_s": [],
        "median_s": None,
        "samples_per_s": None,
        "normalized_throughput": None,
        "memory": None,
    }


def prepare_method(method: Method, params: dict, x: jax.Array, fitness: jax.Array, settings: ForwardSettings):
    """The method's records at one (population, width) and its compiled programs (none if skipped or failed).

    Inference has one phase (forward); an ES has noise, forward and update,
    and the noise program runs once here: its output is the other two's input.
    """
    pop_size, width = x.shape
    phases = ("forward",) if method.name == "inference" else PHASES
    records = [_record(method, phase, pop_size, width, settings) for phase in phases]
    reason = skip_reason(method, pop_size, width, settings)
    if reason:
        for record in records:
            record.update(status="skipped", reason=reason)
        return records, []
    by_phase = {r["phase"]: r for r in records}
    try:
        if method.name == "inference":
            return records, [
                compile_program(by_phase["forward"], inference_forward(settings.activation), (params, x))
            ]
        cfg, matrix_noise = method.es_parts(pop_size, settings)
        sigma = jnp.float32(settings.sigma)
        draw_args = (jax.random.PRNGKey(settings.seed + 1), jnp.zeros((), jnp.int32), params)
        draw = compile_program(by_phase["noise"], noise_draw(cfg, matrix_noise, pop_size // 2), draw_args)
        noise = draw.call()
        forward = population_forward(cfg, matrix_noise, settings.activation)
        update = gradient_estimate(cfg, matrix_noise)
        return records, [
            draw,
            compile_program(by_phase["forward"], forward, (params, noise, x, sigma)),
            compile_program(by_phase["update"], update, (params, noise, fitness, sigma)),
        ]
    except Exception as err:  # e.g. out of device memory: record it, go on with the sweep
        for record in records:
            _fail(record, err)
        return records, []


def measure_point(
    params: dict, x: jax.Array, fitness: jax.Array, settings: ForwardSettings, progress=None
) -> list[dict]:
    """Every method's records at one (population, width), their programs timed in turns."""
    records, programs = [], []
    for method in methods(settings):
        if progress:
            progress(f"forward: width {x.shape[1]}, population {x.shape[0]}: compiling {method.label}")
        method_records, method_programs = prepare_method(method, params, x, fitness, settings)
        records += method_records
        programs += method_programs
    if progress:
        progress(f"forward: width {x.shape[1]}, population {x.shape[0]}: timing")
    time_round_robin(programs, settings)
    return records


def normalise(records: list[dict]) -> None:
    """normalized_throughput of every forward record = its samples/s over inference's at the same (N, width)."""
    reference = {
        (r["pop_size"], r["width"]): r["median_s"]
        for r in records
        if r["method"] == "inference" and r["phase"] == "forward" and r["status"] == "ok"
    }
    for r in records:
        ref = reference.get((r["pop_size"], r["width"]))
        if r["phase"] == "forward" and r["status"] == "ok" and ref:
            r["normalized_throughput"] = ref / r["median_s"]


def forward_summary(records: list[dict]) -> list[dict]:
    """Per (width, population): each method's throughput over pure inference, and EGGROLL's speed-up over OpenES.

    speed-up = OpenES median seconds / EGGROLL median seconds, for the forward
    pass and for the update (gradient estimate) separately; None where OpenES
    was skipped.
    """
    ranks = sorted({r["rank"] for r in records if r["algorithm"] == "eggroll"})
    rows = []
    for width, pop in sorted({(r["width"], r["pop_size"]) for r in records}):
        at = [r for r in records if r["width"] == width and r["pop_size"] == pop]
        inference = _ok(at, method="inference", phase="forward")
        openes_fwd = _ok(at, method="openes", phase="forward")
        openes_upd = _ok(at, method="openes", phase="update")
        row = {
            "width": width,
            "pop_size": pop,
            "inference_samples_per_s": inference.get("samples_per_s"),
            "normalized_throughput": {},
            "speedup_vs_openes_forward": {},
            "speedup_vs_openes_update": {},
        }
        for rank in ranks:
            label = f"eggroll_r{rank}"
            fwd = _ok(at, method=label, phase="forward")
            upd = _ok(at, method=label, phase="update")
            row["normalized_throughput"][label] = fwd.get("normalized_throughput")
            row["speedup_vs_openes_forward"][label] = _ratio(openes_fwd.get("median_s"), fwd.get("median_s"))
            row["speedup_vs_openes_update"][label] = _ratio(openes_upd.get("median_s"), upd.get("median_s"))
        row["normalized_throughput"]["openes"] = openes_fwd.get("normalized_throughput")
        rows.append(row)
    return rows


def _ok(records, **match) -> dict:
    """The one ok record matching every key=value, or {}."""
    for r in records:
        if r["status"] == "ok" and all(r[k] == v for k, v in match.items()):
            return r
    return {}


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def measure(settings: ForwardSettings, progress: Optional[Callable[[str], Any]] = None) -> dict:
    """Every (width, population, method, phase) record, the same observations for every method, and their summary."""
    key = jax.random.PRNGKey(settings.seed)
    records: list[dict] = []
    for width in settings.widths:
        params_key, data_key = jax.random.split(jax.random.fold_in(key, width))
        body = networks.PolicySettings(network="rejax", layer_size=width, n_layers=settings.depth - 1)
        params = {"layers": networks.init_layers(params_key, width, width, body)}
        for pop_size in settings.pop_sizes:
            obs_key, fitness_key = jax.random.split(jax.random.fold_in(data_key, pop_size))
            x = jax.random.normal(obs_key, (pop_size, width), jnp.float32)
            fitness = jax.random.normal(fitness_key, (pop_size,), jnp.float32)
            records.extend(measure_point(params, x, fitness, settings, progress))
    normalise(records)
    return {"records": records, "summary": forward_summary(records)}
