"""Fenced publication: an attempt paused past its lease never publishes; the first complete attempt wins."""

import json
import os
import signal

from semfi_batch.cli import main
from semfi_batch.run.ledger import check_job_folder
from tests.faults.conftest import events, image_manifest, process_state, run_args, start_run, wait_until


def test_worker_paused_past_its_lease_discards_its_attempt(tmp_path):
    manifest = image_manifest(tmp_path, 3, size=24)
    out = tmp_path / "out"
    # The first run stops itself (SIGSTOP) with p01 complete in its attempt folder, about to publish.
    first = start_run(manifest, out, env={"SEMFI_LEASE_TTL": "1", "SEMFI_FAULT_STOP": "publishing:p01"})
    try:
        wait_until(lambda: process_state(first.pid) == "T", 60, "the first run to stop before publishing p01")
        attempts = list((out / "work" / "p01").rglob("attempt-*"))
        assert len(attempts) == 1 and (attempts[0] / "record.json").exists()
        # Past its 1 s lease, a second run takes p01 over and finishes everything.
        os.environ["SEMFI_LEASE_TTL"] = "1"
        try:
            assert main(run_args(manifest, out)) == 0
        finally:
            del os.environ["SEMFI_LEASE_TTL"]
        published = json.loads((out / "jobs/p01/record.json").read_text())
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert "p01: this worker lost its lease" in err and "discarded, not published" in err
    # The published folder is the second run's, whole and verified; the paused attempt left nothing behind.
    assert json.loads((out / "jobs/p01/record.json").read_text()) == published
    record, why = check_job_folder(out / "jobs/p01", published["key"])
    assert record is not None, why
    assert not list((out / "work").rglob("attempt-*"))
    assert [e["event"] for e in events(out) if e["pair_id"] == "p01"].count("lost") == 1
    assert not list((out / "leases").iterdir())


def test_first_complete_attempt_wins(tmp_path):
    """Two attempts of one job complete; the second to publish keeps the first's folder and discards its own."""
    from semfi_batch.backends import BackendOptions, backend_class
    from semfi_batch.run.attempt import execute_job
    from semfi_batch.run.engine import prepare_run
    from semfi_batch.run.job import publish_attempt

    manifest = image_manifest(tmp_path, 1)
    _, layout, jobs = prepare_run(manifest, tmp_path / "out", "blend", BackendOptions(), preview=False)
    backend = backend_class("blend")(BackendOptions())
    first = execute_job(jobs[0], backend, layout, preview=False, token="a" * 32)
    second = execute_job(jobs[0], backend, layout, preview=False, token="b" * 32)
    assert publish_attempt(layout, first, lambda: True) == first.record
    assert publish_attempt(layout, second, lambda: True) == first.record
    assert not second.folder.exists()
    assert json.loads((layout.jobs / "p00/record.json").read_text())["attempt"] == "a" * 32
