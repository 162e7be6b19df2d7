"""Issue 2: the instrumented service vs a bare aiohttp handler returning the same bytes.

Both are single aiohttp processes pinned to the same core, loaded in alternating rounds by the
same wrk on the other core. The figure is the ratio of median throughputs (target >= 0.80).
A second pair of rounds samples every request for tracing (always_on) to show what a span
costs when one is recorded.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from benchmarks._harness import PYTHON, Server, median, pin, run_wrk, start_server

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
PATH = "/api/pitches"


def _service(env: dict[str, str]) -> Server:
    return start_server(pin([PYTHON, "-m", "pitchey_cli", "serve", "--port", "0"], 1), env)


def _measure(instrumented: Server, bare: Server) -> tuple[float, float, float, float]:
    run_wrk(instrumented.url + PATH, seconds=1)  # warm the cache and the connections
    run_wrk(bare.url + PATH, seconds=1)
    inst, ctrl, inst_p50, ctrl_p50 = [], [], [], []
    for _ in range(ROUNDS):
        for server, rps, p50 in ((bare, ctrl, ctrl_p50), (instrumented, inst, inst_p50)):
            result = run_wrk(server.url + PATH, seconds=SECONDS)
            if result.errors:
                raise RuntimeError(f"{server.url}: {result.errors} failed requests")
            rps.append(result.requests_per_s)
            p50.append(result.p50_ms)
    return median(inst), median(ctrl), median(inst_p50), median(ctrl_p50)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "PITCHEY_SQLITE_PATH": str(Path(tmp) / "bench.db"),
            # the limiter stays on the path (its cost is counted) but never refuses
            "PITCHEY_RATE_LIMIT_PER_MINUTE": "1000000000",
        }
        subprocess.run([PYTHON, "-m", "pitchey_cli", "seed"], env={**os.environ, **env},
                       check=True, capture_output=True)
        figures: dict[str, float] = {}
        for label, extra in (("default", {}), ("always_on", {"OTEL_TRACES_SAMPLER": "always_on"})):
            service = _service({**env, **extra})
            bare = start_server(pin([PYTHON, "-m", "benchmarks.bare_server", "--copy-from",
                                     service.url + PATH, "--path", PATH], 1))
            try:
                inst, ctrl, inst_p50, ctrl_p50 = _measure(service, bare)
            finally:
                service.stop()
                bare.stop()
            ratio = inst / ctrl
            figures[f"{label}_instrumented_rps"] = round(inst, 1)
            figures[f"{label}_bare_rps"] = round(ctrl, 1)
            figures[f"{label}_ratio"] = round(ratio, 3)
            print(f"GET {PATH} from cache, sampler={label}: instrumented {inst:,.0f} req/s "
                  f"(p50 {inst_p50:.2f} ms) vs bare {ctrl:,.0f} req/s (p50 {ctrl_p50:.2f} ms)"
                  f" -> ratio {ratio:.3f}")
        verdict = "meets" if figures["default_ratio"] >= 0.80 else "MISSES"
        print(f"instrumented/bare throughput ratio {figures['default_ratio']:.3f} "
              f"{verdict} the target >= 0.80 ({ROUNDS} alternating rounds of {SECONDS:g} s)")
        return figures


if __name__ == "__main__":
    main()
