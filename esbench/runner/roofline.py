"""Roofline lower bounds: how fast a named accelerator could at best run a program, from XLA's own counts.

    bound_s = max(flops / peak_flops, bytes_accessed / memory_bandwidth)

XLA's cost analysis counts a loop's body once, whatever its trip count (a
`scan` of 10 matmuls reports the flops of one). So `loop_corrected_cost`
walks the update's jaxpr: each loop body is compiled alone as its own program,
counted, and multiplied by its trip count (a scan's length; a `while_loop`
outside any other loop, an ES generation's early-exit episode loop, by the
episode steps the measurement saw; a `while_loop` inside another loop, an
env's internals, once). The bound takes the TF32 tensor peak: JAX's default
fp32 matmul precision on these GPUs uses TF32, and a lower bound takes the
faster figure (`fp32_tflops` is the plain CUDA-core peak, for reference).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Jaxpr, jaxpr_as_fun

from esbench.validation import ConfigError, suggest


@dataclass(frozen=True)
class Accelerator:
    name: str
    fp32_tflops: float  # dense, CUDA cores
    tf32_tflops: float  # dense tensor cores (no sparsity)
    bandwidth_tbs: float  # memory bandwidth, TB/s
    memory_gb: float
    source: str

    def bound_s(self, flops: float, bytes_accessed: float) -> float:
        return max(flops / (self.tf32_tflops * 1e12), bytes_accessed / (self.bandwidth_tbs * 1e12))


ACCELERATORS = {
    a.name: a
    for a in (
        # NVIDIA H100 Tensor Core GPU datasheet (2023): SXM5 67 TF fp32, 494.7 TF tf32 dense (989 with
        # sparsity), 3.35 TB/s HBM3, 80 GB
        Accelerator("h100-sxm", 67.0, 494.7, 3.35, 80, "NVIDIA H100 datasheet, SXM5"),
        # same datasheet, PCIe: 51 TF fp32, 378 TF tf32 dense (756 with sparsity), 2.0 TB/s HBM2e, 80 GB
        Accelerator("h100-pcie", 51.0, 378.0, 2.0, 80, "NVIDIA H100 datasheet, PCIe"),
        # NVIDIA A100 datasheet (2021), 80GB SXM: 19.5 TF fp32, 156 TF tf32 dense (312 with sparsity), 2.039 TB/s HBM2e
        Accelerator("a100-80gb", 19.5, 156.0, 2.039, 80, "NVIDIA A100 datasheet, 80GB SXM"),
        # NVIDIA H200 datasheet (2024), SXM: 67 TF fp32, 494.7 TF tf32 dense (989 with sparsity), 4.8 TB/s HBM3e, 141 GB
        Accelerator("h200", 67.0, 494.7, 4.8, 141, "NVIDIA H200 datasheet, SXM"),
        # NVIDIA L40S datasheet (2023): 91.6 TF fp32, 183 TF tf32 dense (366 with sparsity), 864 GB/s GDDR6, 48 GB
        Accelerator("l40s", 91.6, 183.0, 0.864, 48, "NVIDIA L40S datasheet"),
    )
}
HOST = "this-cpu"  # measured here: a large matmul's flops/s and a large array's read bytes/s (measure_host)


def accelerator(name: str) -> Accelerator:
    """The named accelerator (HOST: measured on this machine); ConfigError listing the known ones."""
    if name == HOST:
        return measure_host()
    if name not in ACCELERATORS:
        known = [*ACCELERATORS, HOST]
        raise ConfigError(
            f"--accelerator {name!r} is unknown.{suggest(name, known)} Known: {', '.join(known)}"
        )
    return ACCELERATORS[name]


def _best_time(fn, *args, repeats: int = 3) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def measure_host() -> Accelerator:
    """This machine's default device as an accelerator: fp32 matmul flops/s and copy bytes/s, measured."""
    n = 1024
    a = jnp.ones((n, n), jnp.float32)
    flops = 2 * n**3 / _best_time(jax.jit(lambda x: x @ x), a)
    big = jnp.ones((256 * 2**20 // 4,), jnp.float32)  # 256 MiB: past the caches
    # a reduction reads every byte and allocates nothing (a copy's fresh output buffer pays page faults)
    bandwidth = big.nbytes / _best_time(jax.jit(jnp.sum), big)
    device = jax.local_devices()[0]
    return Accelerator(
        HOST,
        flops / 1e12,
        flops / 1e12,
        bandwidth / 1e12,
        float("nan"),
        f"measured: {device.device_kind}, 1024^2 fp32 matmul and a 256 MiB sum",
    )


# ------------------------------------------------------------------------------- counts ---


def xla_cost(compiled) -> tuple[float, float]:
    """(flops, bytes accessed) of a compiled program by XLA's cost analysis (each loop body counted once)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))


def _compiled_alone(closed: ClosedJaxpr):
    shapes = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in closed.jaxpr.invars]
    return jax.jit(jaxpr_as_fun(closed)).lower(*shapes).compile()


def _closed(jaxpr) -> ClosedJaxpr:
    return jaxpr if isinstance(jaxpr, ClosedJaxpr) else ClosedJaxpr(jaxpr, [])


def _loops(jaxpr: Jaxpr, in_loop: bool, episode_trips: float):
    """(body, trips) of each loop in `jaxpr`, looking through calls (pjit, custom_jvp, cond)."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "scan":
            yield _closed(eqn.params["jaxpr"]), float(eqn.params["length"])
        elif name == "while":
            yield _closed(eqn.params["body_jaxpr"]), (1.0 if in_loop else episode_trips)
        else:
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    if isinstance(sub, (ClosedJaxpr, Jaxpr)):
                        yield from _loops(_closed(sub).jaxpr, in_loop, episode_trips)


def loop_corrected_cost(
    closed: ClosedJaxpr,
    episode_trips: float,
    in_loop: bool = False,
    counted_once: tuple[float, float] | None = None,
    bodies: dict | None = None,
) -> tuple[float, float]:
    """(flops, bytes) of one run of `closed`: cost(J) = xla(J) + sum over its loops of trips * cost(body) - xla(body).

    counted_once: xla(J) where J is already compiled (the chunk program: one update, its loops once).
    bodies: xla counts of loop bodies already compiled, by body (another trip count costs no compile)."""
    bodies = {} if bodies is None else bodies
    flops, bytes_ = counted_once if counted_once is not None else xla_cost(_compiled_alone(closed))
    for body, trips in _loops(closed.jaxpr, in_loop, episode_trips):
        key = id(body.jaxpr)
        if key not in bodies:
            bodies[key] = xla_cost(_compiled_alone(body))
        once = bodies[key]
        body_flops, body_bytes = loop_corrected_cost(body, episode_trips, True, once, bodies)
        flops += trips * body_flops - once[0]
        bytes_ += trips * body_bytes - once[1]
    return flops, bytes_


def update_cost(
    update, state_shapes, values, episode_trips: float, chunk=None, cache: dict | None = None
) -> tuple[float, float]:
    """(flops, bytes accessed) of one update of every point and seed (`update(state, values)`, batched).

    chunk: the compiled chunk program, a while loop of updates whose body XLA counts once: its counts
    are one update's (loops once) and spare compiling the update again. cache: a dict kept between
    calls on the same program, which then count another trip count without compiling anything."""
    cache = {} if cache is None else cache
    if "jaxpr" not in cache:
        cache["jaxpr"] = jax.make_jaxpr(update)(state_shapes, values)
        cache["once"] = xla_cost(chunk) if chunk is not None else None
        cache["bodies"] = {}
    return loop_corrected_cost(
        cache["jaxpr"], float(max(episode_trips, 1.0)), counted_once=cache["once"], bodies=cache["bodies"]
    )


def trips_estimate(
    simulated_steps_per_update: float, max_steps_per_update: float, max_episode_steps: int
) -> float:
    """An ES generation's episode-loop trips: its simulated env steps over the most it can simulate, times the limit."""
    if max_steps_per_update <= 0:
        return 1.0
    return float(np.clip(simulated_steps_per_update / max_steps_per_update, 0, 1) * max_episode_steps)
