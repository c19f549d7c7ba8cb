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
OpenES configurations whose per-member matrices (N m n 4 bytes per layer)
exceed `openes_mem_cap_bytes` are recorded as skipped instead of run.
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

PHASES = ("forward", "noise", "update")
BYTES_PER_FLOAT = 4
MAX_INNER = 1000


@dataclasses.dataclass(frozen=True)
class ForwardSettings:
    pop_sizes: tuple[int, ...]
    widths: tuple[int, ...]
    ranks: tuple[int, ...] = (1, 4, 16)
    depth: int = 3
    repeats: int = 5
    warmup: int = 1
    min_time_s: float = 0.0  # a timed repeat loops a short program until it has run this long
    openes_mem_cap_bytes: int = 2**30
    activation: str = "pqn"
    sigma: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        def fail(field, allowed):
            raise ValueError(f"bench: {field} = {getattr(self, field)!r} is invalid; allowed: {allowed}")

        for field in ("pop_sizes", "widths", "ranks"):
            if len(set(getattr(self, field))) != len(getattr(self, field)):
                fail(field, "distinct values")
        if not self.pop_sizes or any(n < 2 or n % 2 for n in self.pop_sizes):
            fail("pop_sizes", "even integers >= 2 (antithetic pairs)")
        if not self.widths or any(w < 1 for w in self.widths):
            fail("widths", "integers >= 1")
        if any(r < 1 for r in self.ranks):
            fail("ranks", "integers >= 1")
        if self.depth < 1:
            fail("depth", "an integer >= 1")
        if self.repeats < 1:
            fail("repeats", "an integer >= 1")
        if self.warmup < 1:
            fail("warmup", "an integer >= 1 (the last warm-up call sizes the timing loop)")
        if not self.min_time_s >= 0:
            fail("min_time_s", "a number >= 0")
        if self.activation not in networks.ACTIVATIONS:
            fail("activation", ", ".join(networks.ACTIVATIONS))


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


def _error(err: Exception) -> str:
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"{type(err).__name__}: {first_line[:300]}"


def _fail(record: dict, err: Exception) -> None:
    record.update(status="failed", reason=_error(err), times_s=[], median_s=None, samples_per_s=None)


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


def memory_report(compiled) -> dict:
    """The compiled program's buffer sizes (all platforms) and the device's peak so far (where reported).

    JAX cannot reset a device's peak counter, so `device_peak_bytes_in_use` is
    the process's high-water mark up to this measurement, not this program's own.
    """
    report = {"temp_bytes": None, "argument_bytes": None, "output_bytes": None, "device_peak_bytes_in_use": None}
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        stats = None
    if stats is not None:
        report["temp_bytes"] = int(stats.temp_size_in_bytes)
        report["argument_bytes"] = int(stats.argument_size_in_bytes)
        report["output_bytes"] = int(stats.output_size_in_bytes)
    device_stats = jax.devices()[0].memory_stats()  # None on CPU
    if device_stats and "peak_bytes_in_use" in device_stats:
        report["device_peak_bytes_in_use"] = int(device_stats["peak_bytes_in_use"])
    return report


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
        return (f"OpenES materialises N*m*n*4 = {pop_size}*{width}*{width}*4 = {need:,} bytes ({need / 2**30:.2f} GiB) "
                f"per layer, above the cap of {cap:,} bytes ({cap / 2**30:.2f} GiB, --openes-mem-cap-gib)")
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
            return records, [compile_program(by_phase["forward"], inference_forward(settings.activation), (params, x))]
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


def measure_point(params: dict, x: jax.Array, fitness: jax.Array, settings: ForwardSettings, progress=None) -> list[dict]:
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


def run_forward(settings: ForwardSettings, progress: Optional[Callable[[str], Any]] = None) -> list[dict]:
    """Every (width, population, method, phase) record; the same observations for every method."""
    settings.validate()
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
    return records
