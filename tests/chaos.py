"""Kill-chaos harness: SIGKILL `semfi-batch run` and `semfi-batch splice` at random moments, re-run after
each kill, and check that nothing is lost, duplicated or half-written.

Rounds take turns: a single `run` killed at random; `run --workers 3` killed at random (its workers must not
outlive it); and a lease takeover: a run is paused (SIGSTOP) at a random moment while a second run, with a
short lease time, takes its jobs over and finishes; the paused run is then continued and must neither publish
what it was working on nor fail.

After every kill of `run`, each job folder that is published (jobs/<pair_id> with a record saying done) must
be byte-identical to the same job of an uninterrupted reference run; when a run completes, the whole output
tree must be. A finished job that starts again counts as a duplicate (from events.jsonl). After every kill
of `splice`, the output video is either absent or complete and identical to the reference splice; when a
splice completes, it must be identical and no work file may be left.

    .venv/bin/python tests/chaos.py --kills 50          # `make chaos`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "footage" / "clips" / "bottle_640x360_29.83fps.mp4"
MODES = ("single", "workers", "takeover")
TAG_ENV = "SEMFI_TEST_TAG"
TAKEOVER_TTL_S = "1.5"
SKIP = {"record.json", "ledger.jsonl", "metrics.parquet", "run.json", "events.jsonl", "report.html"}


@dataclass
class ChaosResult:
    kills: int = 0
    splice_kills: int = 0
    reruns: int = 0
    rounds: int = 0
    duplicates: int = 0
    mismatches: int = 0
    taken_as_done: int = 0  # incomplete or stale job folders published as done
    misattributed: int = 0  # metrics rows whose backend or status is not their record's
    orphans: int = 0  # processes left running after their `run` was killed or finished
    takeovers: int = 0  # takeover rounds
    lost_attempts: int = 0  # attempts that found their lease taken over and discarded themselves
    modes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        rounds = ", ".join(f"{n} {mode}" for mode, n in self.modes.items())
        return (
            f"kills {self.kills} ({self.kills - self.splice_kills} of run, {self.splice_kills} of splice), "
            f"re-runs {self.reruns}, completed rounds {self.rounds} ({rounds}), "
            f"takeover rounds {self.takeovers} ({self.lost_attempts} attempts discarded after losing their lease), "
            f"duplicates {self.duplicates}, mismatches {self.mismatches}, "
            f"incomplete or stale taken as done {self.taken_as_done}, misattributed metrics rows "
            f"{self.misattributed}, orphan processes {self.orphans}"
        )

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.mismatches or self.taken_as_done or self.misattributed or self.orphans)


def make_manifest(folder: Path, clip: Path, rows: int) -> Path:
    sys.path.insert(0, str(REPO))
    from semfi_batch.manifest import write_manifest

    data = [
        {"pair_id": f"c{i:03d}", "source": str(clip), "start_frame": 10 + 37 * i, "end_frame": 10 + 37 * i + 4}
        for i in range(rows)
    ]  # fmt: skip
    return write_manifest(data, folder / "chaos.parquet")


def run_cmd(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "semfi_batch", "run", str(manifest), "--out", str(out), "--quiet", *extra]


def tagged(tag: str, **extra: str) -> dict:
    """The environment for a process whose descendants `tagged_processes` can find."""
    return {**os.environ, TAG_ENV: tag, **extra}


def tagged_processes(tag: str) -> list[int]:
    """Live processes carrying TAG_ENV=tag in their environment."""
    needle = f"{TAG_ENV}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
                if needle in (entry / "environ").read_bytes().split(b"\0") and state not in (b"Z", b"X"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def count_orphans(tag: str, result: ChaosResult, grace: float = 10.0) -> None:
    """Processes of a killed or finished run still alive after `grace` seconds are orphans (then killed)."""
    deadline = time.time() + grace
    while (left := tagged_processes(tag)) and time.time() < deadline:
        time.sleep(0.1)
    if left:
        result.orphans += len(left)
        result.problems.append(f"orphan processes {left}")
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def splice_cmd(run: Path, video: Path) -> list[str]:
    return [sys.executable, "-m", "semfi_batch", "splice", str(run), "-o", str(video)]


def killed_until_done(cmd: list[str], rng: random.Random, max_wait: float, result: ChaosResult, budget: int,
                      after_kill) -> int:  # fmt: skip
    """Run `cmd` again and again, SIGKILLing it after a random wait while kills remain in `budget`; call
    `after_kill()` after each kill, and count what the killed process left running. Returns the exit status of
    the run that finished."""
    used = 0
    while True:
        tag = uuid.uuid4().hex
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tagged(tag))
        try:
            code = proc.wait(timeout=rng.uniform(0.05, max_wait) if used < budget else None)
            count_orphans(tag, result)
            return code
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            used += 1
            result.kills += 1
            result.reruns += 1
            count_orphans(tag, result)
            after_kill()


def taken_over(manifest: Path, out: Path, rng: random.Random, max_wait: float, result: ChaosResult,
               reference: Path) -> int:  # fmt: skip
    """Pause a run (its whole process group) at a random moment; a second run with a short lease time takes
    its jobs over and finishes; then continue the first. Returns the worse exit status of the two."""
    tag = uuid.uuid4().hex
    env = tagged(tag, SEMFI_LEASE_TTL=TAKEOVER_TTL_S)
    first = subprocess.Popen(run_cmd(manifest, out), cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
    try:
        first.wait(timeout=rng.uniform(0.3, max_wait))
    except subprocess.TimeoutExpired:
        os.killpg(first.pid, signal.SIGSTOP)
    second = subprocess.run(run_cmd(manifest, out), cwd=REPO, capture_output=True, env=env)
    check_published(out, reference, result)
    with contextlib.suppress(OSError):
        os.killpg(first.pid, signal.SIGCONT)
    code = first.wait()
    count_orphans(tag, result)
    result.lost_attempts += sum(e.get("event") == "lost" for e in read_events(out))
    return code or second.returncode


def job_files(job_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(job_dir)): p.read_bytes() for p in sorted(job_dir.rglob("*")) if p.is_file()
            and p.name not in SKIP}  # fmt: skip


def read_events(out: Path) -> list[dict]:
    found = []
    path = out / "events.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def check_metrics_attribution(out: Path, result: ChaosResult) -> None:
    """Every metrics row says what its job's record says (backend, status)."""
    import pyarrow.parquet as pq

    for row in pq.read_table(out / "metrics.parquet").to_pylist():
        try:
            record = json.loads((out / "jobs" / row["pair_id"] / "record.json").read_text())
        except (OSError, json.JSONDecodeError):
            record = {}
        if (row["backend"], row["status"]) != (record.get("backend"), record.get("status")):
            result.misattributed += 1
            result.problems.append(f"{row['pair_id']}: metrics row says {row['backend']}/{row['status']}")


def check_published(out: Path, reference: Path, result: ChaosResult) -> None:
    """Every job folder that claims to be done equals the reference's."""
    jobs = out / "jobs"
    if not jobs.exists():
        return
    for job_dir in jobs.iterdir():
        try:
            record = json.loads((job_dir / "record.json").read_text())
        except (OSError, json.JSONDecodeError):
            result.mismatches += 1
            result.problems.append(f"{job_dir.name}: published without a readable record")
            continue
        if record.get("status") == "done" and job_files(job_dir) != job_files(reference / "jobs" / job_dir.name):
            result.mismatches += 1
            result.taken_as_done += 1
            result.problems.append(f"{job_dir.name}: published folder differs from the reference")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in SKIP}  # fmt: skip


TIMING = {"wall_s", "s_per_frame", "peak_rss_mb", "peak_gpu_mb", "notes"}


def metrics_rows(out: Path) -> list[dict]:
    """metrics.parquet without the columns that measure time or memory (they differ between any two runs)."""
    import pyarrow.parquet as pq

    return [
        {k: v for k, v in row.items() if k not in TIMING} for row in pq.read_table(out / "metrics.parquet").to_pylist()
    ]


def check_video(video: Path, reference: Path, result: ChaosResult) -> None:
    """After a killed splice: no video yet, or the whole, final one."""
    if video.exists() and video.read_bytes() != reference.read_bytes():
        result.mismatches += 1
        result.problems.append(f"{video.name}: a killed splice left a video that differs from the reference")


def count_duplicates(out: Path) -> int:
    """Starts of a job after it was already done."""
    done: set[str] = set()
    duplicates = 0
    path = out / "events.jsonl"
    if not path.exists():
        return 0
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event["event"] == "start" and event["pair_id"] in done:
            duplicates += 1
        if event["event"] == "done":
            done.add(event["pair_id"])
    return duplicates


def chaos(kills: int, rows: int, max_wait: float, seed: int, work: Path, rounds: int = 0,
          modes: tuple[str, ...] = ("single",)) -> ChaosResult:  # fmt: skip
    rng = random.Random(seed)
    manifest = make_manifest(work, CLIP, rows)
    reference = work / "reference"
    subprocess.run(run_cmd(manifest, reference), cwd=REPO, check=True)
    reference_video = work / "reference.mp4"
    subprocess.run(splice_cmd(reference, reference_video), cwd=REPO, check=True, capture_output=True)
    result = ChaosResult()
    while result.kills < kills or result.rounds < rounds:
        out = work / f"round{result.rounds}"
        mode = modes[result.rounds % len(modes)]
        result.modes[mode] = result.modes.get(mode, 0) + 1
        # Three quarters of the kills go to `run`, the rest to `splice`, spread over the rounds.
        run_target = kills * 3 // 4
        run_budget = max(0, run_target - (result.kills - result.splice_kills))
        if rounds:  # spread the kills over the rounds asked for
            run_budget = min(run_budget, -(-run_target // rounds))
        if mode == "takeover":
            result.takeovers += 1
            code = taken_over(manifest, out, rng, max_wait, result, reference)
        else:
            extra = ("--workers", "3") if mode == "workers" else ()
            code = killed_until_done(run_cmd(manifest, out, *extra), rng, max_wait, result, run_budget,
                                     lambda out=out: check_published(out, reference, result))  # fmt: skip
        if code != 0:
            result.problems.append(f"round {result.rounds}: run exited {code}")
            result.mismatches += 1
        check_published(out, reference, result)
        if tree(out / "jobs") != tree(reference / "jobs"):
            result.mismatches += 1
            result.problems.append(f"round {result.rounds}: final outputs differ from the reference")
        if metrics_rows(out) != metrics_rows(reference):
            result.mismatches += 1
            result.problems.append(f"round {result.rounds}: metrics differ from the reference (timing aside)")
        check_metrics_attribution(out, result)
        result.duplicates += count_duplicates(out)

        video = work / f"round{result.rounds}.mp4"
        before = result.kills
        splice_left = kills - run_target - result.splice_kills
        splice_budget = splice_left if run_budget == 0 else min(splice_left, 3)
        if rounds:
            splice_budget = min(splice_left, -(-(kills - run_target) // rounds))
        code = killed_until_done(splice_cmd(out, video), rng, max_wait / 2, result, splice_budget,
                                 lambda video=video: check_video(video, reference_video, result))  # fmt: skip
        result.splice_kills += result.kills - before
        if code != 0 or not video.exists() or video.read_bytes() != reference_video.read_bytes():
            result.mismatches += 1
            result.problems.append(f"round {result.rounds}: splice exited {code} or its video differs")
        leftovers = [p.name for p in work.iterdir() if p.name.startswith(".") or "tmp" in p.name]
        if leftovers:
            result.mismatches += 1
            result.problems.append(f"round {result.rounds}: splice left {leftovers}")
        result.rounds += 1
        shutil.rmtree(out, ignore_errors=True)
        video.unlink(missing_ok=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--max-wait", type=float, default=4.0, help="longest time before a kill (s)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--rounds", type=int, default=0, help="at least this many complete rounds")
    parser.add_argument("--modes", default="single,workers,takeover", help="round kinds, taken in turn")
    args = parser.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="semfi-chaos-") as tmp:
        result = chaos(args.kills, args.rows, args.max_wait, args.seed, Path(tmp), rounds=args.rounds,
                       modes=tuple(args.modes.split(",")))  # fmt: skip
    print(f"chaos (seed {args.seed}, {time.time() - t0:.0f} s): {result.line()}")
    for problem in result.problems[:20]:
        print(f"  {problem}")
    return 0 if result.clean else 1


if __name__ == "__main__":
    sys.exit(main())
