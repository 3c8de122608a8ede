"""Files written whole or not at all (semfi_batch/atomic_write.py): every whole-file write of the tool goes
through write_atomic, so these are the guarantees of frames, records, metrics, reports and caches alike."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import DiskFull, SemfiError


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_parts_written_in_order_and_replacing_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old contents, longer than the new")
    write_atomic(target, b"ab", memoryview(b"cd"), bytearray(b"ef"))
    assert target.read_bytes() == b"abcdef"
    write_atomic(target, b"", sync=False)
    assert target.read_bytes() == b""
    assert _leftovers(tmp_path) == []


def test_a_symlink_at_the_target_is_replaced_never_written_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"the user's file")
    target = tmp_path / "run" / "record.json"
    target.parent.mkdir()
    target.symlink_to(outside)
    write_atomic(target, b"{}")
    assert outside.read_bytes() == b"the user's file"
    assert not target.is_symlink() and target.read_bytes() == b"{}"


def test_failure_names_the_target_and_leaves_nothing(tmp_path):
    target = tmp_path / "no-such-folder" / "frame.png"
    with pytest.raises(SemfiError) as err:
        write_atomic(target, b"x")
    assert str(err.value).startswith(f"cannot write {target}: ") and ".tmp" not in str(err.value)
    assert not isinstance(err.value, DiskFull)


def test_file_size_limit_is_disk_full_with_the_old_file_intact(tmp_path):
    """A real EFBIG (RLIMIT_FSIZE) half way through the bytes: DiskFull naming the target, the old file
    whole, no temporary file left."""
    target = tmp_path / "metrics.parquet"
    target.write_bytes(b"previous metrics")
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from semfi_batch.atomic_write import write_atomic\n"
        "from semfi_batch.errors import DiskFull\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    write_atomic(Path(sys.argv[1]), b'a' * 3000, b'b' * 3000)\n"
        "except DiskFull as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith(f"cannot write {target}: ") and "file size limit" in done.stdout
    assert target.read_bytes() == b"previous metrics"
    assert _leftovers(tmp_path) == []


def test_exclusive_creation_has_one_winner_whole(tmp_path):
    target = tmp_path / "run.json"
    contents = [bytes([65 + i]) * 200_000 for i in range(6)]
    won, lost = [], []
    start = threading.Barrier(len(contents))

    def create(data: bytes) -> None:
        start.wait()
        try:
            write_atomic(target, data, exclusive=True)
            won.append(data)
        except FileExistsError:
            lost.append(data)

    threads = [threading.Thread(target=create, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == len(contents) - 1
    assert target.read_bytes() == won[0]
    assert _leftovers(tmp_path) == []


def test_ctrl_c_or_sigterm_mid_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from semfi_batch.termination import Terminated

    target = tmp_path / "report.html"
    target.write_bytes(b"old")

    def interrupted(fd):
        raise Terminated()

    monkeypatch.setattr("semfi_batch.atomic_write.os.fsync", interrupted)
    with pytest.raises(Terminated):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []  # before: .report.html.tmp<pid>-<hex>
