"""The region-weighted Locust dispatcher, run in a child process (Locust patches with gevent,
which must never happen inside the test process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, locust
from locust.runners import WorkerNode
from loadtests.dispatch import region_dispatcher
from loadtests.journeys import BrowserUser, CreatorUser, InvestorUser

regions = {"w-east": "us-east", "w-west": "us-west", "w-eu": "europe", "w-asia": "asia"}
weights = {"us-east": 30, "us-west": 25, "europe": 25, "asia": 20}
mix = {"CreatorUser": 1, "InvestorUser": 3, "BrowserUser": 6}
cls = region_dispatcher(lambda: regions, weights, mix)
nodes = [WorkerNode(i) for i in regions]
dispatcher = cls(nodes, [BrowserUser, CreatorUser, InvestorUser])
dispatcher.new_dispatch(target_user_count=1000, spawn_rate=1000)
full = list(dispatcher)[-1]
dispatcher.remove_worker(nodes[3])
dispatcher.new_dispatch(target_user_count=1000, spawn_rate=1000)
rebalanced = list(dispatcher)[-1]
print(json.dumps({"full": full, "rebalanced": rebalanced}))
"""


def test_users_go_to_regions_by_weight_each_with_the_full_mix() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=True)
    placed = json.loads(result.stdout.strip().splitlines()[-1])
    full = placed["full"]
    totals = {worker: sum(classes.values()) for worker, classes in full.items()}
    assert totals == {"w-east": 300, "w-west": 250, "w-eu": 250, "w-asia": 200}
    for worker, classes in full.items():
        share = totals[worker] / 10
        assert classes == {"CreatorUser": share, "InvestorUser": 3 * share,
                           "BrowserUser": 6 * share}, worker
    rebalanced = placed["rebalanced"]
    assert "w-asia" not in rebalanced
    totals = {worker: sum(classes.values()) for worker, classes in rebalanced.items()}
    assert sum(totals.values()) == 1000
    assert abs(totals["w-east"] - 375) <= 1 and abs(totals["w-eu"] - 312.5) <= 1
