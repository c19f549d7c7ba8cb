"""The roofline's check on this CPU: the bound from XLA's counts and this CPU's measured peaks against the
measured update time.

esbench plan sweeps/paper16.yaml --budget cpu --skip-search --envs CartPole-v1 --accelerator this-cpu --json plan.json
python benchmarks/roofline_cpu_check.py plan.json      # a Markdown table: bound and measured time per update
"""

import json
import sys

from esbench.runner.roofline import measure_host

d = json.load(open(sys.argv[1]))
host = measure_host()
print(
    f"this CPU, measured now: {host.fp32_tflops * 1e3:.1f} GFLOP/s (1024^2 fp32 matmul), "
    f"{host.bandwidth_tbs * 1e3:.1f} GB/s (256 MiB sum)"
)
print(
    "| program | GFLOP / update | GB accessed / update | bound / update | measured / update | measured / bound |"
)
print("|---|---|---|---|---|---|")
for p in d["programs"]:
    b = host.bound_s(p["flops_per_update"], p["bytes_per_update"])
    print(
        f"| {p['env']} x {p['algo']} | {p['flops_per_update'] / 1e9:.3f} | {p['bytes_per_update'] / 1e9:.3f} "
        f"| {b * 1e3:.0f} ms | {p['update_s'] * 1e3:.0f} ms | {p['update_s'] / b:.2f} |"
    )
