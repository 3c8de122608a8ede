"""The bad-input corpus: each case runs the CLI in a subprocess (as a user would) on a broken input and
checks the exit code, the words of the one-line error (row, column, file), that no traceback is printed,
that the inputs are unchanged and that nothing half-written is left in the output root."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from tests.conftest import REPO, numbered_clip


@dataclass
class Case:
    name: str
    build: Callable[[Path], list[str]]  # makes the inputs in a folder, returns the CLI arguments
    code: int
    words: tuple[str, ...]
    env: dict | None = None


def _images(d: Path) -> None:
    rng = np.random.default_rng(0)
    write_png(d / "a.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    write_png(d / "b.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    write_png(d / "wide.png", rng.integers(0, 256, (24, 48, 3), dtype=np.uint8))


def _clip(d: Path) -> Path:
    return d / "clip.mp4" if (d / "clip.mp4").exists() else numbered_clip(d / "clip.mp4", 20)


def image_row(**kw) -> dict:
    return {"pair_id": "p1", "start_image": "a.png", "end_image": "b.png", "gap_frames": 2, **kw}


def manifest_case(rows: list[dict] | Callable[[Path], list[dict]]) -> Callable[[Path], list[str]]:
    """A `run` of a manifest made of `rows` (image rows see a.png, b.png, wide.png; video rows clip.mp4)."""

    def build(d: Path) -> list[str]:
        _images(d)
        data = rows(d) if callable(rows) else rows
        write_manifest(data, d / "m.parquet")
        return ["run", str(d / "m.parquet"), "--out", str(d / "out"), "--quiet"]

    return build


def video_rows(**kw) -> Callable[[Path], list[dict]]:
    return lambda d: [{"pair_id": "v1", "source": str(_clip(d)), "start_frame": 2, "end_frame": 6, **kw}]


def raw_table(table: pa.Table) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        _images(d)
        pq.write_table(table, d / "m.parquet")
        return ["run", str(d / "m.parquet"), "--out", str(d / "out"), "--quiet"]

    return build


def file_manifest(make: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        make(d / "m.parquet")
        return ["manifest", "validate", str(d / "m.parquet")]

    return build


def _truncated_parquet(path: Path) -> None:
    pq.write_table(pa.table({"pair_id": ["a"] * 100, "gap_frames": list(range(100))}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bomb_png(path: Path) -> None:
    """A tiny PNG whose header claims 30000x30000 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))  # fmt: skip


def _with(make: Callable[[Path], None], rows: list[dict]) -> Callable[[Path], list[str]]:
    def build(d: Path) -> list[str]:
        _images(d)
        make(d)
        write_manifest(rows, d / "m.parquet")
        return ["run", str(d / "m.parquet"), "--out", str(d / "out"), "--quiet"]

    return build


def _truncated_video(d: Path) -> None:
    clip = numbered_clip(d / "full.mp4", 20)
    data = clip.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 3])


def _audio_only(d: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=0.5", str(d / "audio.m4a")], check=True)


def _symlinked_out(d: Path) -> list[str]:
    _images(d)
    write_manifest([image_row()], d / "m.parquet")
    elsewhere = d / "elsewhere"
    elsewhere.mkdir()
    (d / "out").mkdir()
    (d / "out" / "jobs").symlink_to(elsewhere)
    return ["run", str(d / "m.parquet"), "--out", str(d / "out"), "--quiet"]


def _out_is_file(d: Path) -> list[str]:
    _images(d)
    write_manifest([image_row()], d / "m.parquet")
    (d / "out").write_text("I am a file")
    return ["run", str(d / "m.parquet"), "--out", str(d / "out"), "--quiet"]


def _no_ffmpeg(d: Path) -> list[str]:
    write_manifest(video_rows()(d), d / "m.parquet")
    return ["run", str(d / "m.parquet"), "--out", str(d / "out"), "--quiet"]


def _full_disk(d: Path) -> list[str]:
    _images(d)
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)  # incompressible: ~3 MB per PNG
    write_png(d / "big_a.png", big)
    write_png(d / "big_b.png", big[::-1].copy())
    write_manifest([{"pair_id": "big", "start_image": "big_a.png", "end_image": "big_b.png", "gap_frames": 3}],
                   d / "m.parquet")  # fmt: skip
    out = d / "small_fs"
    out.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(out)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    return ["run", str(d / "m.parquet"), "--out", str(out), "--quiet", "--no-preview"]


def _failing_ffmpeg_splice(d: Path) -> list[str]:
    """A finished run, then `splice` with an ffmpeg that works once and fails from its second call on."""
    clip = numbered_clip(d / "clip.mp4", 48)
    write_manifest([{"pair_id": "r", "source": str(clip), "start_frame": 20, "end_frame": 24}], d / "m.parquet")
    subprocess.run([sys.executable, "-m", "semfi_batch", "run", str(d / "m.parquet"), "--out", str(d / "out"),
                    "--quiet", "--backend", "blend"], cwd=REPO, check=True, capture_output=True)  # fmt: skip
    fake = d / "out" / "fakebin"  # under the output root: not an input
    fake.mkdir()
    script = fake / "ffmpeg"
    script.write_text(
        "#!/bin/bash\n"
        f'n=$(cat "{fake}/calls" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{fake}/calls"\n'
        'if [ "$n" -ge 2 ]; then echo "simulated encoder crash" >&2; exit 1; fi\n'
        f'exec {shutil.which("ffmpeg")} "$@"\n'
    )
    script.chmod(0o755)
    return ["splice", str(d / "out"), "-o", str(d / "out" / "spliced.mp4")]


CASES = [
    Case(
        "not parquet",
        file_manifest(lambda p: p.write_text("pair_id,start_image\nx,a.png\n")),
        2,
        ("not a readable Parquet manifest", "m.parquet"),
    ),
    Case("truncated parquet", file_manifest(_truncated_parquet), 2, ("not a readable Parquet manifest",)),
    Case(
        "manifest missing",
        lambda d: ["manifest", "validate", str(d / "nope.parquet")],
        2,
        ("manifest not found", "nope.parquet"),
    ),
    Case("manifest is a folder", lambda d: ["run", str(d)], 2, ("is a folder",)),
    Case(
        "missing pair_id column",
        raw_table(pa.table({"start_image": ["a.png"], "end_image": ["b.png"]})),
        2,
        ("column 'pair_id'", "required column is missing"),
    ),
    Case(
        "missing keyframe columns",
        raw_table(pa.table({"pair_id": ["x"], "gap_frames": [1]})),
        2,
        ("keyframe columns missing",),
    ),
    Case(
        "wrong type",
        raw_table(
            pa.table({"pair_id": ["x"], "start_image": ["a.png"], "end_image": ["b.png"], "gap_frames": ["two"]})
        ),
        2,
        ("column 'gap_frames'", "has type string"),
    ),
    Case("null pair_id", manifest_case([image_row(pair_id=None)]), 2, ("row 0", "column 'pair_id'", "is required")),
    Case("null end_image", manifest_case([image_row(end_image=None)]), 2, ("row 0", "column 'end_image'")),
    Case(
        "duplicate pair ids",
        manifest_case([image_row(), image_row()]),
        2,
        ("row 1", "column 'pair_id'", "duplicate of row 0"),
    ),
    Case("pair id with slash", manifest_case([image_row(pair_id="a/b")]), 2, ("row 0", "column 'pair_id'")),
    Case("pair id with dotdot", manifest_case([image_row(pair_id="..")]), 2, ("row 0", "column 'pair_id'", "'..'")),
    Case("pair id with NUL", manifest_case([image_row(pair_id="a\x00b")]), 2, ("row 0", "column 'pair_id'")),
    Case(
        "path to a device",
        manifest_case([image_row(start_image="/dev/zero")]),
        2,
        ("column 'start_image'", "/dev/zero", "not a regular file"),
    ),
    Case(
        "path to a folder", manifest_case([image_row(end_image=".")]), 2, ("column 'end_image'", "not a regular file")
    ),
    Case(
        "missing image",
        manifest_case([image_row(start_image="gone.png")]),
        2,
        ("row 0", "column 'start_image'", "gone.png", "not found"),
    ),
    Case(
        "zero-byte image",
        _with(lambda d: (d / "zero.png").write_bytes(b""), [image_row(end_image="zero.png")]),
        2,
        ("column 'end_image'", "zero.png"),
    ),
    Case(
        "corrupt image",
        _with(lambda d: (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really"), [image_row(end_image="bad.png")]),
        2,
        ("column 'end_image'", "bad.png"),
    ),
    Case(
        "image cut short",
        _with(
            lambda d: (d / "cut.png").write_bytes((d / "a.png").read_bytes()[:-40]), [image_row(end_image="cut.png")]
        ),  # noqa: E501
        2,
        ("column 'end_image'", "cut.png", "cut short"),
    ),
    Case(
        "decompression bomb",
        _with(lambda d: _bomb_png(d / "bomb.png"), [image_row(start_image="bomb.png")]),
        2,
        ("column 'start_image'", "bomb.png", "pixel"),
    ),
    Case(
        "truncated video",
        _with(_truncated_video, [{"pair_id": "t", "source": "cut.mp4", "start_frame": 1, "end_frame": 5}]),
        2,
        ("column 'source'", "cut.mp4"),
    ),
    Case(
        "no video stream",
        _with(_audio_only, [{"pair_id": "a", "source": "audio.m4a", "start_frame": 1, "end_frame": 5}]),
        2,
        ("column 'source'", "no video stream"),
    ),
    Case(
        "frames past the end",
        manifest_case(video_rows(end_frame=25)),
        2,
        ("row 0", "column 'end_frame'", "past the end", "20 frames"),
    ),
    Case(
        "start equals end",
        manifest_case(video_rows(start_frame=6)),
        2,
        ("column 'end_frame'", "greater than start_frame"),
    ),
    Case("start after end", manifest_case(video_rows(start_frame=9)), 2, ("column 'end_frame'",)),
    Case("gap_frames zero", manifest_case([image_row(gap_frames=0)]), 2, ("column 'gap_frames'", "between 1")),
    Case("gap_frames huge", manifest_case([image_row(gap_frames=10**9)]), 2, ("column 'gap_frames'", "between 1")),
    Case(
        "gap_frames contradicts replace", manifest_case(video_rows(gap_frames=7)), 2, ("column 'gap_frames'", "gives 3")
    ),
    Case("width not positive", manifest_case([image_row(width=0, height=10)]), 2, ("column 'width'", "positive")),
    Case("height negative", manifest_case([image_row(width=16, height=-2)]), 2, ("column 'height'", "positive")),
    Case(
        "mismatched keyframe sizes",
        manifest_case([image_row(end_image="wide.png")]),
        2,
        ("column 'end_image'", "48x24", "32x24"),
    ),
    Case(
        "unknown backend option",
        lambda d: manifest_case([image_row()])(d) + ["--backend", "warp9"],
        2,
        ("unknown backend 'warp9'",),
    ),
    Case(
        "unknown backend in row", manifest_case([image_row(backend="warp9")]), 2, ("row 0", "column 'backend'", "warp9")
    ),
    Case("unknown mode", manifest_case([image_row(mode="stretch")]), 2, ("column 'mode'", "stretch")),
    Case("symlink in output root", _symlinked_out, 2, ("outside the output root",)),
    Case("output root is a file", _out_is_file, 2, ("is not a folder",)),
    Case(
        "ffmpeg missing from PATH",
        _no_ffmpeg,
        2,
        ("ffprobe not found on PATH", "apt-get install"),
        env={"PATH": "/nonexistent"},
    ),
    Case("output filesystem full", _full_disk, 1, ("no space left",)),
    Case(
        "ffmpeg failing mid-splice",
        _failing_ffmpeg_splice,
        1,
        ("simulated encoder crash",),
        env={"PATH": "{out}/fakebin:" + os.environ.get("PATH", "")},
    ),
    Case("bad shard", lambda d: manifest_case([image_row()])(d) + ["--shard", "2/2"], 2, ("--shard 2/2",)),
]


OUTPUTS = ("out", "small_fs", "elsewhere")


def snapshot(folder: Path) -> dict[str, str]:
    """Hashes of the input files (output roots excluded)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.relative_to(folder).parts[0] not in OUTPUTS
    }


def test_corpus_has_at_least_30_cases():
    assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    args = case.build(inputs)
    before = snapshot(inputs)
    env = {**os.environ, **{k: v.replace("{out}", str(inputs / "out")) for k, v in (case.env or {}).items()}}
    try:
        proc = subprocess.run([sys.executable, "-m", "semfi_batch", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == case.code, proc.stderr
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
        assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1
        for word in case.words:
            assert word in proc.stderr, f"{word!r} not in {proc.stderr!r}"
        assert snapshot(inputs) == before  # no input changed (nor made)
        if (inputs / "elsewhere").is_dir():
            assert not list((inputs / "elsewhere").iterdir())  # nothing written through the symlink
        for out in (inputs / "out", inputs / "small_fs"):
            if out.is_dir() and not out.is_symlink():
                leftovers = [p for p in out.rglob("*") if ".tmp" in p.name or "spliced" in p.name]
                assert not leftovers, leftovers  # no temporary file, no half-written video
                for job in (out / "jobs").glob("*") if (out / "jobs").is_dir() else []:
                    assert (job / "record.json").exists(), f"{job} published without its record"
    finally:
        if (inputs / "small_fs").is_dir():
            subprocess.run(["umount", str(inputs / "small_fs")], capture_output=True)
        shutil.rmtree(inputs, ignore_errors=True)
