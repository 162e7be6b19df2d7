"""`python -m benchmarks [NAME ...]`: run every benchmarks/bench_*.py (or the named ones).

Each module's `main()` prints what it measured and returns its figures; the figures of the
whole run are written to benchmarks/results.json so a later run can be compared with it.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(path.stem.removeprefix("bench_") for path in HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    names = argv or discover()
    unknown = [name for name in names if name not in discover()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(discover())}")
        return 2
    results: dict[str, object] = {}
    failed = []
    for name in names:
        print(f"\n=== benchmark: {name} ===", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            results[name] = module.main()
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            results[name] = {"error": traceback.format_exc(limit=1)}
        print(f"=== {name}: {time.perf_counter() - started:.1f} s ===", flush=True)
    (HERE / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nfigures written to {HERE / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
