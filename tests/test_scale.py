"""Several workers on one output root: leases, shards, merge, and the Ray executor."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import load_manifest, write_manifest
from semfi_batch.plan import shard_of
from tests.conftest import REPO, numbered_clip
from tests.test_run import tree_bytes


def starts(out) -> Counter:
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return Counter(e["pair_id"] for e in events if e["event"] == "start")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """Ten rows over one numbered clip, made once in this module: the tests only read them (every run's output
    and caches are under its own --out)."""
    folder = tmp_path_factory.mktemp("scale")
    clip = numbered_clip(folder / "numbered.mp4", 100, size="96x64")
    rows = [
        {"pair_id": f"j{i:02d}", "source": str(clip), "start_frame": s, "end_frame": s + 4}
        for i, s in enumerate(range(0, 60, 6))
    ]
    return write_manifest(rows, folder / "m.parquet")


def run_cmd(manifest, out, *extra):
    return [sys.executable, "-m", "semfi_batch", "run", str(manifest), "--out", str(out), "--quiet", *extra]


def test_two_concurrent_runs_do_every_job_exactly_once(manifest, tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen(run_cmd(manifest, out), cwd=REPO) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    counts = starts(out)
    assert set(counts) == {f"j{i:02d}" for i in range(10)}
    assert set(counts.values()) == {1}, counts
    workers = {json.loads(line)["worker"] for line in (out / "events.jsonl").read_text().splitlines()}
    # host:pid:run-token; each run may have several worker processes (--workers auto).
    assert len({w.rsplit(":", 1)[1] for w in workers}) == 2  # both runs took part
    assert len(pq.read_table(out / "metrics.parquet")) == 10


def test_workers_option_runs_processes_without_duplicates(manifest, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--workers", "2"]) == 0
    assert set(starts(out).values()) == {1} and len(starts(out)) == 10


def test_killed_worker_job_is_finished_by_another(manifest, tmp_path):
    out = tmp_path / "out"
    victim = subprocess.Popen(run_cmd(manifest, out), cwd=REPO)
    leases = out / "leases"
    deadline = time.time() + 60
    while time.time() < deadline and not (leases.exists() and list(leases.glob("*.lease"))):
        time.sleep(0.01)
    held = [p.stem for p in leases.glob("*.lease")]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert held, "the victim held no lease when killed"
    assert subprocess.run(run_cmd(manifest, out), cwd=REPO).returncode == 0
    record = json.loads((out / "jobs" / held[0] / "record.json").read_text())
    assert record["status"] == "done"
    assert len(pq.read_table(out / "metrics.parquet")) == 10


def test_lease_of_a_live_remote_worker_is_honoured_until_it_expires(manifest, tmp_path):
    out = tmp_path / "out"
    (out / "leases").mkdir(parents=True)
    expires = time.time() + 3.0
    lease = {"worker": "node7:123:abc", "host": "node7-" + socket.gethostname(), "pid": 123, "expires": expires}
    (out / "leases" / "j05.lease").write_text(json.dumps(lease))
    assert main(["run", str(manifest), "--out", str(out), "--quiet"]) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    j05 = next(e for e in events if e["pair_id"] == "j05" and e["event"] == "start")
    assert j05["t"] >= expires  # waited for the remote worker's lease to run out, then took the job
    assert all(e["t"] < expires for e in events if e["pair_id"] == "j00")  # the others did not wait


def test_shards_partition_the_manifest_and_merge(manifest, tmp_path, capsys):
    out = tmp_path / "out"
    pair_ids = {p.pair_id for p in load_manifest(manifest).pairs}
    for i in range(3):
        assert main(["run", str(manifest), "--out", str(out), "--quiet", "--shard", f"{i}/3"]) == 0
    parts = [
        {r["pair_id"] for r in pq.read_table(out / f"metrics.shard-{i}-of-3.parquet").to_pylist()} for i in range(3)
    ]
    assert set.union(*parts) == pair_ids and sum(map(len, parts)) == len(pair_ids)
    assert all(parts)  # every shard got work
    # Resume a shard: nothing runs again, and the shard owns the same pairs.
    before = starts(out)
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--shard", "1/3"]) == 0
    assert starts(out) == before
    assert {r["pair_id"] for r in pq.read_table(out / "metrics.shard-1-of-3.parquet").to_pylist()} == parts[1]
    # Membership depends on pair_id alone, not on position: dropping rows keeps every pair's shard.
    assert all(shard_of(p, 3) == i for i, part in enumerate(parts) for p in part)
    assert main(["merge", str(out)]) == 0
    assert "10 done, 0 failed, 0 without a record" in capsys.readouterr().out
    assert {r["pair_id"] for r in pq.read_table(out / "metrics.parquet").to_pylist()} == pair_ids


def test_merge_reports_missing_pairs(manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--shard", "0/4"]) == 0
    assert main(["merge", str(out)]) == 1
    assert "without a record" in capsys.readouterr().out


def test_bad_shard_option(manifest, tmp_path, capsys):
    assert main(["run", str(manifest), "--out", str(tmp_path / "o"), "--shard", "3/3"]) == 2  # a usage error
    assert "--shard 3/3" in capsys.readouterr().err


def test_ray_executor_matches_local_run(manifest, tmp_path):
    pytest.importorskip("ray")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(["run", str(manifest), "--out", str(local), "--quiet"]) == 0
    assert main(["run", str(manifest), "--out", str(on_ray), "--quiet", "--executor", "ray", "--workers", "2"]) == 0
    assert tree_bytes(on_ray) == tree_bytes(local)
    assert set(starts(on_ray).values()) == {1}
    # Resume on Ray runs nothing.
    assert main(["run", str(manifest), "--out", str(on_ray), "--quiet", "--executor", "ray"]) == 0
    assert set(starts(on_ray).values()) == {1}


def test_ray_dead_actor_job_is_retried_on_another(manifest, tmp_path):
    pytest.importorskip("ray")
    import threading

    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(["run", str(manifest), "--out", str(local), "--quiet"]) == 0
    killed: list[int] = []

    def kill_an_actor_mid_run() -> None:
        deadline = time.time() + 90
        while time.time() < deadline and not killed:
            started = (on_ray / "events.jsonl").exists() and "start" in (on_ray / "events.jsonl").read_text()
            pids = subprocess.run(["pgrep", "-f", "ray::JobActor"], capture_output=True, text=True).stdout.split()
            if started and pids:
                os.kill(int(pids[0]), signal.SIGKILL)
                killed.append(int(pids[0]))
            time.sleep(0.05)

    killer = threading.Thread(target=kill_an_actor_mid_run)
    killer.start()
    code = main(["run", str(manifest), "--out", str(on_ray), "--quiet", "--executor", "ray", "--workers", "2"])
    killer.join()
    assert killed, "no Ray actor was seen to kill"
    assert code == 0
    assert tree_bytes(on_ray) == tree_bytes(local)
