"""`make formats`: splice every cell of the format matrix (tests/format_matrix.py) and print one table.

For each cell: a numbered clip is made with ffmpeg, generated frames come from `semfi-batch run --backend
blend` (or, with --frames synthetic, solid-colour frames written into a run folder directly), `semfi-batch
splice` puts them back, and the result is checked: codec, profile, pixel format, field order, timecode,
audio streams, frame count, untouched frames (bit-identical for intra codecs, >= 45 dB otherwise) and the
generated frames in their places.

    .venv/bin/python bench/formats_matrix.py [--only NAME,...] [--frames run|synthetic] [--reencode] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semfi_batch.media.encode import available_encoders, probe_stream_facts  # noqa: E402
from tests.format_matrix import (  # noqa: E402
    EDITS,
    RECIPES,
    CellResult,
    check_splice,
    expected_order,
    generated_pictures,
    make_clip,
    write_run_folder,
)

COLUMNS = ("name", "method", "codec", "profile", "pix_fmt", "field_order", "timecode", "audio", "frames",
           "untouched", "generated")  # fmt: skip


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "semfi_batch", *args], capture_output=True, text=True, env=env)


def run_cell(recipe, folder: Path, frames_mode: str, env: dict, reencode: bool = False) -> CellResult:
    started = time.time()
    missing = [e for e in recipe.needs if e not in available_encoders()]
    if missing:
        return CellResult(recipe.name, method="skipped", problems=[f"no encoder {', '.join(missing)}"])
    clip = make_clip(recipe, folder)
    run_dir = folder / f"run-{recipe.name}"
    shutil.rmtree(run_dir, ignore_errors=True)
    facts = probe_stream_facts(clip)
    if frames_mode == "run":
        from semfi_batch.manifest import write_manifest

        rows = [{"pair_id": e["pair_id"], "source": str(clip), "start_frame": e["start"], "end_frame": e["end"],
                 "mode": e["mode"], "gap_frames": e.get("gap", e["end"] - e["start"] - 1)} for e in EDITS]  # fmt: skip
        manifest = folder / f"{recipe.name}.parquet"
        write_manifest(rows, manifest)
        done = cli("run", str(manifest), "--out", str(run_dir), "--backend", "blend", "--no-preview", env=env)
        if done.returncode != 0:
            return CellResult(recipe.name, method="run failed", problems=[_last(done)])
    else:
        write_run_folder(run_dir, clip, EDITS, facts.display_size, facts.pix_fmt)
    output = folder / f"{recipe.name}.spliced.{recipe.ext}"
    output.unlink(missing_ok=True)
    done = cli("splice", str(run_dir), "-o", str(output), *(["--reencode"] if reencode else []), env=env)
    if done.returncode != 0:
        return CellResult(recipe.name, method="splice failed", problems=[_last(done)], seconds=time.time() - started)
    order = expected_order(len(_frame_pts(clip)), EDITS)
    pictures = generated_pictures(run_dir, EDITS, order)
    result = check_splice(recipe, clip, output, order, pictures, facts.rotation, reencoded=reencode)
    result.method = _method(done.stdout, output.name, recipe.intra)
    result.seconds = time.time() - started
    return result


def _frame_pts(path: Path) -> list[float]:
    from semfi_batch.media.probe import probe_video

    return list(probe_video(path).frame_times)


def _method(stdout: str, name: str, intra: bool) -> str:
    """How the cell was spliced, from the summary line `<output>: <note>; <audio note>`."""
    for line in stdout.splitlines():
        if line.startswith(f"{name}:"):
            note = line.split(":", 1)[1].strip()
            if note.startswith("full re-encode"):
                return "re-encode: " + note.split(":", 1)[1].split(";")[0].strip()[:48]
            return "packet copy" if intra else "smart cut"
    return "?"


def _last(done: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit {done.returncode}"


def table(results: list[CellResult]) -> str:
    rows = [[*COLUMNS, "ok", "s"]]
    for r in results:
        rows.append([str(getattr(r, c)) for c in COLUMNS] + ["yes" if r.ok else "NO", f"{r.seconds:.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated cell names")
    parser.add_argument("--frames", choices=("run", "synthetic"), default="run")
    parser.add_argument("--reencode", action="store_true", help="splice with --reencode (the fallback) everywhere")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    wanted = {n for n in args.only.split(",") if n}
    folder = args.keep or Path(tempfile.mkdtemp(prefix="semfi-formats-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results = []
    for recipe in RECIPES:
        if wanted and recipe.name not in wanted:
            continue
        try:
            result = run_cell(recipe, folder, args.frames, env, args.reencode)
        except Exception as exc:  # a broken cell is a row of the table, not the end of the matrix
            result = CellResult(recipe.name, method="error", problems=[f"{type(exc).__name__}: {exc}"])
        results.append(result)
        print(f"{recipe.name}: {'ok' if result.ok else '; '.join(result.problems)} ({result.seconds:.1f}s)", flush=True)
    print()
    print(table(results))
    failed = [r for r in results if not r.ok and r.method != "skipped"]
    for r in failed:
        print(f"FAILED {r.name}: {'; '.join(r.problems)}")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{len(results) - len(failed)} of {len(results)} cells pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
