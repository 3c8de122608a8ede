"""Damaged, skewed and live leases: damaged ones are stale once their mtime is older than the lease time (with a
notice), a live one is waited on with who holds it and until when."""

import json
import os
import socket
import time

import pytest

from semfi_batch.cli import main
from tests.faults.conftest import run_args


def write_lease(out, pair_id: str, content, *, age_s: float = 0.0):
    leases = out / "leases"
    leases.mkdir(parents=True, exist_ok=True)
    path = leases / f"{pair_id}.lease"
    if content == "folder":
        path.mkdir()
        (path / "x").write_text("?")
    else:
        path.write_bytes(content)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


@pytest.mark.parametrize(
    "content, damage",
    [
        (b"\x00\xffgarbage{", "cannot be read"),
        ("folder", "is a folder"),
        (b"", "is empty"),
        # A writer whose clock ran an hour ahead: an expiry no lease time explains.
        (
            json.dumps(
                {
                    "worker": "far:1:x",
                    "token": "t",
                    "claimed": time.time() + 3600,
                    "expires": time.time() + 3660,
                    "host": "far",
                    "pid": 1,
                }
            ).encode(),
            "has an impossible time",
        ),  # fmt: skip
    ],
    ids=["garbage", "folder", "empty", "future-time"],
)
def test_damaged_lease_is_taken_over_once_its_mtime_is_old(images, tmp_path, capsys, content, damage):
    out = tmp_path / "out"
    write_lease(out, "p01", content, age_s=120)
    assert main(run_args(images, out)) == 0
    err = capsys.readouterr().err
    assert f"p01.lease {damage}" in err and "stale (mtime older than 60 s): taking it over" in err, err
    assert err.count("notice:") == 1
    assert json.loads((out / "jobs/p01/record.json").read_text())["status"] == "done"
    assert not list((out / "leases").iterdir())


def test_live_lease_is_waited_on_with_its_holder(images, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("SEMFI_LEASE_TTL", "1")
    now = time.time()
    holder = f"{socket.gethostname()}-other:4242:abc"
    lease = {"worker": holder, "token": "t" * 32, "claimed": now, "expires": now + 1.5, "ttl": 1, "host": "other"}
    write_lease(out, "p02", json.dumps(lease).encode())
    started = time.time()
    assert main(run_args(images, out)) == 0
    err = capsys.readouterr().err
    assert f"p02: waiting, leased by {holder} until" in err, err
    assert time.time() - started >= 1.0  # honoured until it expired, then taken over
    assert json.loads((out / "jobs/p02/record.json").read_text())["status"] == "done"


def test_fresh_damaged_lease_is_honoured_for_one_lease_time(images, tmp_path, capsys, monkeypatch):
    """An empty lease may be one being written: live until its mtime is a lease time old."""
    out = tmp_path / "out"
    monkeypatch.setenv("SEMFI_LEASE_TTL", "1")
    write_lease(out, "p00", b"")
    started = time.time()
    assert main(run_args(images, out)) == 0
    assert time.time() - started >= 0.9
    assert "p00.lease is empty; stale" in capsys.readouterr().err
