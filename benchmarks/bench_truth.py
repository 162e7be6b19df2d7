"""Truth: what a run reports against what a reference target served, from its own log.

The two short real runs of tests/integration/test_truth.py (`testing.truth`): a closed model
of the suite's browsers against a bimodal target (10/200 ms, 2 % seeded 500s, two regions),
and an open model at 20 arrivals/s against a target that stalls 2 s every 8 s. Prints every
reported percentile against the truth, then one line:

    truth: p95 error x %, p99 error y %, counts exact, corrected p99 error z %

(p95/p99 of the closed run; the corrected p99 of the open run, from each arrival's intended
start). Run it on a quiet machine: the errors are the generator's overhead and grow with
whatever else the machine does. About a minute.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from testing.truth import closed_bimodal, count_problems, latency_comparisons, open_stall

__all__ = ["main"]


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-truth-") as tmp:
        work = Path(tmp)
        closed = closed_bimodal(work / "closed")
        opened = open_stall(work / "open")
    figures: dict[str, object] = {}
    for name, played in (("closed", closed), ("open", opened)):
        print(f"{name} run ({played.config.mode} target, {played.truth.requests} requests, "
              f"{played.truth.failures} failures, {played.truth.cut} cut by the server's "
              f"count; run ended {played.ended}):")
        for comparison in latency_comparisons(played):
            print(f"  {comparison}")
            figures[f"{name} {comparison.what} error"] = round(comparison.error, 6)
        problems = count_problems(played)
        figures[f"{name} counts"] = problems or "exact"
        print(f"  counts: {'; '.join(problems) if problems else 'exact'}")
    by_name = {c.what: c for c in latency_comparisons(closed)}
    corrected = {c.what: c for c in latency_comparisons(opened)}["corrected p99"]
    counts = "exact" if not (count_problems(closed) or count_problems(opened)) \
        else "counts OFF (see above)"
    counts = "counts exact" if counts == "exact" else counts
    print(f"truth: p95 error {100 * by_name['p95'].error:.2f} %, p99 error "
          f"{100 * by_name['p99'].error:.2f} %, {counts}, corrected p99 error "
          f"{100 * corrected.error:.2f} %")
    figures.update({"p95_error": by_name["p95"].error, "p99_error": by_name["p99"].error,
                    "corrected_p99_error": corrected.error, "counts": counts})
    return figures


if __name__ == "__main__":
    main()
