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


@pytest.mark.parametrize("links", [True, False])
def test_a_lease_appears_whole_or_not_at_all(tmp_path, monkeypatch, links):
    """A lease is written under a temporary name and linked into place: created empty and then written, a worker
    killed between the two (kill -9 while it claims) left an empty lease, which the next run honoured for the
    whole lease time (60 s) before taking the job over. Where the filesystem takes no hard links it is created
    in place as before."""
    import errno

    from semfi_batch.run.lease import LeaseManager

    seen_empty = []
    real_link = os.link

    def link(source, target):
        seen_empty.append(os.path.exists(target))  # nothing at the lease's name before the link
        if not links:
            raise OSError(errno.EPERM, "hard links not supported", str(target))
        return real_link(source, target)

    monkeypatch.setattr(os, "link", link)
    folder = tmp_path / "leases"
    folder.mkdir()
    with LeaseManager(folder, "w1", ttl_s=30) as leases:
        token = leases.try_claim("p00")
        assert token and json.loads((folder / "p00.lease").read_text())["token"] == token
        assert leases.holds("p00", token)
        assert sorted(p.name for p in folder.iterdir()) == ["p00.lease"]  # no temporary file left
        assert LeaseManager(folder, "w2", ttl_s=30).try_claim("p00") is None  # held: the second claim fails
        leases.release("p00")
    assert seen_empty[0] is False
