"""The report page of an eval file (`semfi-batch eval`): the per-backend summary (best marked), quality and speed
plots, and one gap per clip side by side (start key, original, each backend, end key). Its rows come as a
pandas table (`read_eval`); the run page does without pandas."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from semfi_batch.evaluate import BackendSummary, format_seconds, read_eval, summarize
from semfi_batch.report.page import (
    esc,
    facts_table,
    figure_html,
    figure_png,
    fmt,
    html_table,
    img_cell,
    new_figure,
    now,
    page_html,
    section,
)

PALETTE = ["#3b7dd8", "#e08a2e", "#4aa564", "#9b59b6", "#d8453b", "#7f8c8d", "#c9a227", "#2bb3b3"]


def eval_report_html(path: Path) -> str:
    """The HTML page for an eval Parquet file."""
    path = Path(path).absolute()
    rows, meta = read_eval(path)
    summaries = summarize(rows) if len(rows) else []
    done = rows[rows["status"] == "done"]
    failed = rows[rows["status"] != "done"]
    settings = [
        ("file", str(path)),
        ("created", str(meta.get("created", "-"))),
        ("held out", str(meta.get("drop") or ", ".join(sorted(rows["drop"].unique())))),
        ("size", "x".join(map(str, meta["size"])) if meta.get("size") else "full size"),
        ("clips", ", ".join(rows["clip_name"].unique())),
        ("gaps", str(rows["pair_id"].nunique())),
        ("backends", ", ".join(rows["backend"].unique())),
    ]
    plots = []
    if len(done):
        plots.append(("backend-comparison", "Per-backend comparison", _plot_backend_bars(summaries)))
        plots.append(("quality-distribution", "Quality distribution over gaps", _plot_distributions(done)))
        plots.append(("speed-vs-quality", "Speed and quality", _plot_speed_quality(done, summaries)))
        if done["clip_name"].nunique() > 1:
            plots.append(("per-clip", "Mean PSNR per clip", _plot_per_clip(done)))
    body = [
        f"<h1>semfi-batch eval report</h1><p class='sub'>{esc(str(path))} &middot; written {now()}</p>",
        section("settings", "Settings", facts_table(settings)),
        section("summary", "Summary per backend", _summary_table(summaries)),
        section("plots", "Plots", "".join(figure_html(i, t, png) for i, t, png in plots) or "<p>No results.</p>"),
        section("samples", "Side by side", _eval_samples(rows)),
        section(
            "failures",
            f"Failures ({len(failed)})",
            html_table(
                ["clip", "gap", "backend", "error"],
                [[r["clip_name"], r["pair_id"], r["backend"], r.get("error") or ""] for r in failed.to_dict("records")],
                cls="failures",
            )
            if len(failed)
            else "<p>No failures.</p>",
        ),
    ]
    return page_html("semfi-batch eval report", body)


def _summary_table(summaries: Sequence[BackendSummary]) -> str:
    rows = [
        [
            ("★ " if s.best else "") + s.backend,
            f"{s.gaps}" + (f" ({s.failed} failed)" if s.failed else ""),
            fmt(s.psnr, 2),
            f"{fmt(s.worst_psnr, 2)} ({s.worst_clip})",
            fmt(s.ssim, 4),
            fmt(s.worst_ssim, 4),
            f"{fmt(s.warp_error, 2)} ({fmt(s.warp_error_truth, 2)})",
            format_seconds(s.s_per_frame),
        ]
        for s in summaries
    ]
    head = [
        "backend",
        "gaps",
        "PSNR dB",
        "worst clip PSNR",
        "SSIM",
        "worst clip SSIM",
        "warp error (originals)",
        "s/frame",
    ]
    note = (
        "<p class='sub'>★ best: highest mean PSNR. Means over gaps; the worst clip is the one with the lowest "
        "mean PSNR. Warp error: lower is steadier; the originals' own figure is in brackets.</p>"
    )
    best = {i for i, s in enumerate(summaries) if s.best}
    return html_table(head, rows, cls="summary", marked=best) + note


def _backend_colors(names: Sequence[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _plot_backend_bars(summaries: Sequence[BackendSummary]) -> bytes:
    names = [s.backend for s in summaries]
    colors = _backend_colors(names)
    fig = new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3)
    x = np.arange(len(names))
    for ax, mean, worst, label in (
        (axes[0], [s.psnr for s in summaries], [s.worst_psnr for s in summaries], "PSNR (dB)"),
        (axes[1], [s.ssim for s in summaries], [s.worst_ssim for s in summaries], "SSIM"),
    ):
        ax.bar(x, mean, color=[colors[n] for n in names])
        ax.scatter(x, worst, color="black", marker="v", zorder=3, label="worst clip")
        ax.set_xticks(x, [("★ " if s.best else "") + s.backend for s in summaries], rotation=20)
        ax.set_ylabel(label)
        finite = [v for v in mean + worst if v == v]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.3 or abs(hi) * 0.05 or 1.0
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"mean {label} (higher is better)")
        ax.legend(loc="lower right", fontsize=7)
    ax = axes[2]
    ax.bar(x, [s.warp_error for s in summaries], color=[colors[n] for n in names])
    truth = [s.warp_error_truth for s in summaries if s.warp_error_truth == s.warp_error_truth]
    if truth:
        ax.axhline(float(np.mean(truth)), color="black", linestyle="--", label="originals")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xticks(x, names, rotation=20)
    ax.set_title("warp error (lower is steadier)")
    return figure_png(fig)


def _plot_distributions(done: pd.DataFrame) -> bytes:
    names = list(dict.fromkeys(done["backend"]))
    colors = _backend_colors(names)
    fig = new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    for ax, column, label in zip(fig.subplots(1, 2), ("psnr", "ssim"), ("PSNR (dB)", "SSIM"), strict=True):
        data = [done.loc[done["backend"] == n, column].dropna().to_numpy() for n in names]
        parts = ax.boxplot(data, patch_artist=True, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20)
        for patch, name in zip(parts["boxes"], names, strict=True):
            patch.set_facecolor(colors[name])
            patch.set_alpha(0.6)
        ax.set_ylabel(label)
        ax.set_title(f"{label} per gap")
    return figure_png(fig)


def _plot_speed_quality(done: pd.DataFrame, summaries: Sequence[BackendSummary]) -> bytes:
    names = [s.backend for s in summaries]
    colors = _backend_colors(names)
    fig = new_figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    ax_scatter, ax_time = fig.subplots(1, 2)
    for name in names:
        part = done[done["backend"] == name]
        ax_scatter.scatter(part["s_per_frame"].clip(lower=1e-4), part["psnr"], s=14, color=colors[name], label=name)
    ax_scatter.set_xscale("log")
    ax_scatter.set_xlabel("seconds per frame (log)")
    ax_scatter.set_ylabel("PSNR (dB)")
    ax_scatter.set_title("each gap: quality against speed")
    ax_scatter.legend(fontsize=7)
    x = np.arange(len(names))
    ax_time.bar(x, [max(s.s_per_frame, 1e-4) for s in summaries], color=[colors[n] for n in names])
    ax_time.set_yscale("log")
    ax_time.set_xticks(x, names, rotation=20)
    ax_time.set_ylabel("seconds per frame (log)")
    ax_time.set_title("time per frame")
    return figure_png(fig)


def _plot_per_clip(done: pd.DataFrame) -> bytes:
    table = done.pivot_table(index="clip_name", columns="backend", values="psnr", aggfunc="mean", sort=False)
    names = list(table.columns)
    colors = _backend_colors(list(dict.fromkeys(done["backend"])))
    fig = new_figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(table.index))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        ax.bar(x + i * width - 0.4 + width / 2, table[name], width=width, color=colors[name], label=name)
    ax.set_xticks(x, list(table.index), rotation=20, ha="right", fontsize=8)
    finite = table.to_numpy()[np.isfinite(table.to_numpy())]
    if finite.size:
        ax.set_ylim(finite.min() - 2, finite.max() + 1)
    ax.set_ylabel("mean PSNR (dB)")
    ax.legend(fontsize=7)
    return figure_png(fig)


def _eval_samples(rows: pd.DataFrame) -> str:
    if "thumb_truth" not in rows:
        return "<p>No pictures in this file.</p>"
    shown = rows[rows["thumb_truth"].notna()]
    if shown.empty:
        return "<p>No pictures in this file.</p>"
    out = []
    for (clip, pair_id), group in shown.groupby(["clip_name", "pair_id"], sort=False):
        first = group.iloc[0]
        cells = [_bytes_cell(first["thumb_start"], f"start key (frame {first['start_frame']})", "key")]
        cells.append(_bytes_cell(first["thumb_truth"], "original (held out)", "truth"))
        for r in group.to_dict("records"):
            caption = f"{r['backend']}: {fmt(r.get('psnr'), 2)} dB, SSIM {fmt(r.get('ssim'), 3)}"
            cells.append(_bytes_cell(r.get("thumb_output"), caption, "gen"))
        cells.append(_bytes_cell(first["thumb_end"], f"end key (frame {first['end_frame']})", "key"))
        out.append(
            f"<div class='sheet' data-pair='{esc(str(pair_id))}'><h3>{esc(str(clip))}: frames "
            f"{first['start_frame']}-{first['end_frame']}</h3><p class='sub'>the gap whose keys differ most; "
            f"middle held-out frame</p><div class='strip'>{''.join(cells)}</div></div>"
        )
    return "".join(out)


def _bytes_cell(data, caption: str, kind: str) -> str:
    if data is None or (isinstance(data, float) and math.isnan(data)):
        return img_cell(None, caption, kind)
    return img_cell("data:image/jpeg;base64," + base64.b64encode(bytes(data)).decode(), caption, kind)
