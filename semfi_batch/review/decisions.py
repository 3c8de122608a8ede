"""The reviewer's decision per job, kept in RUN/decisions.json beside the run's outputs.

A decision is `undecided`, `accepted`, `rejected` or `regenerate`. Regeneration sets a seed and/or a backend
for the job; they stay in the store after the job ran again (its key depends on them, so dropping them would
make the next `run` go back to the old output), while the decision itself goes back to `undecided`. Another
decision before that run takes the regeneration back: the job's settings go back to those its frames were
made with (kept in `before_regeneration`), so the next `run` leaves the frames the editor decided on alone. They are
kept with the row they were made for (`row_identity`: source, range, mode): a row that reuses the pair_id with
other frames (detect renumbering its rows) does not inherit them; `current_decisions` says they were dropped.

An accept or a reject holds for the frames it was made on: it keeps a digest of the job's outputs as its
record listed them then (run/ledger.py `outputs_digest`). Once the job delivered other frames (its row edited
and run again, `run --force` of a backend that does not repeat itself, a changed source), `current_decisions`
gives it as undecided: nothing unseen is spliced as accepted, and nothing new is left out as rejected.

Every change re-reads the file under an exclusive lock (RUN/.decisions.lock), so the page, the scriptable CLI
and a running `run` never lose each other's updates, and is written to a temporary file beside the target and
renamed into place: a kill leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import SemfiError
from semfi_batch.manifest import KeyframePair
from semfi_batch.plan import default_seed

DECISIONS_NAME = "decisions.json"
LOCK_NAME = ".decisions.lock"
UNDECIDED, ACCEPTED, REJECTED, REGENERATE = "undecided", "accepted", "rejected", "regenerate"
STATUSES = (UNDECIDED, ACCEPTED, REJECTED, REGENERATE)
FORMAT_VERSION = 2  # 2: accepted and rejected name the outputs they were made on (older ones hold for none)


class DecisionError(SemfiError):
    """A decision names a job the run does not have, an unknown status or backend, or the file is unreadable."""

    exit_code = 2


class OtherFramesNow(DecisionError):
    """A decision made on a view of a job's frames that it no longer has (it ran again since)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One job's decision, and the settings a regeneration gave it (None: the manifest row's own)."""

    status: str = UNDECIDED
    seed: int | None = None
    backend: str | None = None
    regenerations: int = 0
    updated_at: str | None = None
    outputs: str | None = None  # accepted/rejected: the digest of the job's outputs when decided
    # regenerate: the row the seed/backend were given for (`row_identity`); None in older files (any row)
    row: list | None = None
    earlier: str | None = None  # set by current_decisions: the status made on outputs the job no longer has
    dropped: str | None = None  # set by current_decisions: a regeneration made for a row that has changed
    # regenerate, not yet run: the seed, backend, row and regenerations before it (what taking it back restores)
    before_regeneration: dict | None = None

    @property
    def overrides(self) -> tuple[int | None, str | None]:
        """(seed, backend) the job runs with instead of its manifest row's."""
        return self.seed, self.backend


def decisions_path(run_dir: Path) -> Path:
    """RUN/decisions.json."""
    return Path(run_dir) / DECISIONS_NAME


def load_decisions(run_dir: Path) -> dict[str, Decision]:
    """Every stored decision, by pair_id (jobs never decided are absent: they are undecided)."""
    path = decisions_path(run_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise DecisionError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
        jobs = data["jobs"]
        return {str(pid): _decision(entry) for pid, entry in jobs.items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise DecisionError(f"{path} is not a decisions file ({type(exc).__name__}: {exc}); move it away") from None


def _decision(entry: dict) -> Decision:
    status = entry.get("status", UNDECIDED)
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    seed = entry.get("seed")
    return Decision(
        status=status,
        seed=int(seed) if seed is not None else None,
        backend=entry.get("backend") or None,
        regenerations=int(entry.get("regenerations") or 0),
        updated_at=entry.get("updated_at"),
        outputs=entry.get("outputs") or None,
        row=entry.get("row") if isinstance(entry.get("row"), list) else None,
        before_regeneration=entry.get("before_regeneration")
        if isinstance(entry.get("before_regeneration"), dict)
        else None,
    )


def current_decisions(run_dir: Path, unusable: Mapping[str, str] | None = None) -> dict[str, Decision]:
    """`load_decisions`, with every accept or reject made on other outputs than the job's record lists now
    (or on a job without a done record), or on a job that splice leaves out now (stale or damaged: its row or
    an input changed since, or its files no longer match its record; run/stale.py `unusable_reason`), given as
    undecided, its old status in `earlier`, and every regeneration's seed and backend made for a row that has
    changed since left out, saying so in `dropped`. `unusable`: pair_id -> why, for callers that judged the
    jobs already (checked here, by size and count, when not given)."""
    from semfi_batch.run.ledger import outputs_digest, read_record
    from semfi_batch.run.stale import unusable_jobs

    decisions = load_decisions(run_dir)
    rows = _current_rows(run_dir) if any(d.row is not None for d in decisions.values()) else {}
    for pid, d in decisions.items():
        if d.row is not None and (d.seed is not None or d.backend) and rows.get(pid) != d.row:
            d = decisions[pid] = replace(
                d, status=UNDECIDED if d.status == REGENERATE else d.status, seed=None, backend=None,
                dropped=f"regeneration (seed {d.seed}, backend {d.backend or 'as before'}) made for "
                f"{_describe_row(d.row)}; the row is now {_describe_row(rows.get(pid))}",
            )  # fmt: skip
        if d.status in (ACCEPTED, REJECTED):
            now = outputs_digest(read_record(Path(run_dir) / "jobs" / pid))
            if now is None or now != d.outputs:
                decisions[pid] = replace(d, status=UNDECIDED, outputs=None, earlier=d.status)
    decided = [pid for pid, d in decisions.items() if d.status in (ACCEPTED, REJECTED)]
    if decided:
        unusable = unusable if unusable is not None else unusable_jobs(Path(run_dir), decided)
        for pid in decided:
            if unusable.get(pid):
                d = decisions[pid]
                decisions[pid] = replace(d, status=UNDECIDED, outputs=None, earlier=d.status)
    return decisions


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DecisionError(f"run folder not found: {run_dir}")
    with open(run_dir / LOCK_NAME, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _save(run_dir: Path, decisions: dict[str, Decision]) -> None:
    path = decisions_path(run_dir)
    payload = {
        "version": FORMAT_VERSION,
        "jobs": {
            pid: {k: v for k, v in asdict(d).items() if k not in ("earlier", "dropped")}
            for pid, d in sorted(decisions.items())
        },
    }
    write_atomic(path, (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def decide(
    run_dir: Path,
    pair_ids: Iterable[str],
    status: str,
    *,
    seed: int | None = None,
    backend: str | None = None,
    known_ids: Iterable[str] | None = None,
    known_backends: Iterable[str] | None = None,
    seen: dict[str, str | None] | None = None,
) -> dict[str, Decision]:
    """Set `status` for `pair_ids` and save at once; returns the new decisions of those jobs. An accept or a
    reject names the outputs the job's record lists now (see the module's docstring); DecisionError for a job
    without finished frames, whose folder does not match its record, or (`seen`: pair_id -> the digest of
    the outputs the reviewer was shown) that has other frames than the reviewer saw.

    `regenerate` takes `seed` and/or `backend`; without a seed the job gets a new one derived from its
    pair_id and how often it was regenerated (stable, and different each time)."""
    pair_ids = list(dict.fromkeys(pair_ids))
    if status not in STATUSES:
        raise DecisionError(f"unknown decision {status!r}; use one of {', '.join(STATUSES)}")
    if status != REGENERATE and (seed is not None or backend is not None):
        raise DecisionError("--seed and --backend go with --regenerate")
    if seed is not None:
        seed = seed_value(seed)
    if backend is not None and known_backends is not None and backend not in set(known_backends):
        raise DecisionError(f"unknown backend {backend!r}; known: {', '.join(sorted(known_backends))}")
    if known_ids is not None:
        known = set(known_ids)
        unknown = [p for p in pair_ids if p not in known]
        if unknown:
            raise DecisionError(f"no such job in this run: {', '.join(unknown)}")
    rows = None  # the rows as they stand, kept with a regeneration
    unusable: dict[str, str] = {}  # an accept or reject is made on a job splice would take, or refused
    if status in (ACCEPTED, REJECTED):
        from semfi_batch.run.stale import unusable_jobs

        unusable = unusable_jobs(Path(run_dir), pair_ids)  # the files' content is checked with each job, below
    with _locked(run_dir):
        decisions = load_decisions(run_dir)
        changed = {}
        for pid in pair_ids:
            old = decisions.get(pid, Decision())
            if status == REGENERATE:
                if rows is None:
                    rows = _current_rows(run_dir)
                count = old.regenerations + 1
                new = replace(
                    old,
                    status=REGENERATE,
                    before_regeneration=old.before_regeneration if old.status == REGENERATE else _settings(old),
                    outputs=None,
                    seed=seed if seed is not None else default_seed(f"{pid}#regenerate{count}"),
                    backend=backend if backend is not None else old.backend,
                    regenerations=count,
                    row=rows.get(pid),
                    updated_at=_now(),
                )
            else:
                outputs = None
                if status in (ACCEPTED, REJECTED):
                    outputs = _outputs_to_decide_on(Path(run_dir) / "jobs" / pid, pid, status, seen, unusable.get(pid))
                if old.status == REGENERATE:  # taken back before it ran: the settings its frames were made with
                    old = _taken_back(old)
                new = replace(old, status=status, outputs=outputs, updated_at=_now())
            decisions[pid] = changed[pid] = new
        _save(run_dir, decisions)
    return changed


def seed_value(seed: object) -> int:
    """A seed as a whole number from 0 to 2**63 - 1 (a manifest's range), from an int or its decimal digits (a
    page sends them as text: JavaScript numbers would round 63-bit seeds); DecisionError for anything else,
    such as 1.5, which int() would quietly make 1."""
    if isinstance(seed, str) and seed.strip().isascii() and seed.strip().isdigit():
        seed = int(seed.strip())
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise DecisionError(f"the seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return seed


def _settings(decision: Decision) -> dict:
    """The regeneration settings in force, as `before_regeneration` keeps them."""
    return {"seed": decision.seed, "backend": decision.backend, "row": decision.row,
            "regenerations": decision.regenerations}  # fmt: skip


def _taken_back(decision: Decision) -> Decision:
    """A pending regeneration undone: the settings before it (none: the row's own, for files that did not keep
    them)."""
    before = decision.before_regeneration or {}
    seed = before.get("seed")
    return replace(
        decision, seed=int(seed) if seed is not None else None, backend=before.get("backend") or None,
        row=before.get("row") if isinstance(before.get("row"), list) else None,
        regenerations=int(before.get("regenerations", decision.regenerations)), before_regeneration=None,
    )  # fmt: skip


def _outputs_to_decide_on(
    job_dir: Path, pair_id: str, status: str, seen: dict[str, str | None] | None, unusable: str | None
) -> str:
    """The digest of the outputs an accept or reject of `pair_id` is made on (see `decide`); `unusable`: why
    splice leaves the job out (run/stale.py `unusable_reason`: "" when it takes it, None when not judged)."""
    from semfi_batch.run.ledger import check_job_folder, outputs_digest, read_record

    verb = "accept" if status == ACCEPTED else "reject"
    if read_record(job_dir) is None:
        raise DecisionError(f"{pair_id} has no finished frames to {verb}: run it first")
    record, why = check_job_folder(job_dir)  # its files by content
    if record is None:
        raise DecisionError(f"cannot {verb} {pair_id}: its job folder does not match its record ({why}); run it again")
    if unusable:  # stale: its row or an input changed since it ran
        raise DecisionError(
            f"cannot {verb} {pair_id}: {unusable}; splice leaves it out, and the next `semfi-batch run` makes it again"
        )
    digest = outputs_digest(record)
    if digest is None:
        raise DecisionError(f"{pair_id} has no finished frames to {verb} (its job {record.get('status')})")
    if seen is not None and seen.get(pair_id) != digest:
        raise OtherFramesNow(f"{pair_id} has other frames than the page showed (it ran again): reload the page")
    return digest


def regeneration_overrides(
    run_dir: Path, pairs: Iterable[KeyframePair] | None = None
) -> dict[str, tuple[int | None, str | None]]:
    """(seed, backend) per job that a regeneration gave other settings; `run` plans those jobs with them. Only
    for a row as it was when the regeneration was asked for: `pairs` are the rows to be planned (default: the
    run folder's manifest), and a row whose source, range or mode changed since (detect renumbering its
    rows) keeps its own settings."""
    decisions = load_decisions(run_dir)
    wanted = {pid: d for pid, d in decisions.items() if d.seed is not None or d.backend}
    if not wanted:
        return {}
    if pairs is None:
        rows = _current_rows(run_dir) if any(d.row is not None for d in wanted.values()) else {}
    else:
        rows = {p.pair_id: row_identity(p, p.source) for p in pairs}
    return {pid: d.overrides for pid, d in wanted.items() if d.row is None or rows.get(pid) == d.row}


def row_identity(pair: KeyframePair, source: Path | None) -> list:
    """What makes a manifest row the row it is, for a regeneration kept with it: its source video (`source`,
    resolved) or key images (by name: paths to them are written relative to different folders), mode and
    range."""
    images = [Path(p).name if p else None for p in (pair.start_image, pair.end_image)]
    return [str(Path(source).resolve()) if source else None, *images, pair.mode, pair.start_frame,
            pair.end_frame, pair.gap_frames]  # fmt: skip


def _current_rows(run_dir: Path) -> dict[str, list]:
    """`row_identity` of every row of the run folder's manifest (its sources resolved as splice does)."""
    from semfi_batch.manifest import load_manifest
    from semfi_batch.run.sources import manifest_sources

    path = Path(run_dir) / "manifest.parquet"
    try:
        manifest = load_manifest(path, check_media=False)
    except (SemfiError, OSError):
        return {}
    sources = manifest_sources(Path(run_dir), manifest)
    return {p.pair_id: row_identity(p, sources.get(p.pair_id)) for p in manifest.pairs}


def _describe_row(row: list | None) -> str:
    if row is None:
        return "gone from the manifest"
    source, start_image, _, mode, start, end, _ = row
    return f"{mode} {Path(source).name if source else start_image} {start}-{end}"


def pending_regenerations(run_dir: Path) -> set[str]:
    """Jobs marked for regeneration that have not run again yet."""
    return {pid for pid, d in load_decisions(run_dir).items() if d.status == REGENERATE}


def mark_regenerated(run_dir: Path, records: dict[str, dict]) -> None:
    """After their jobs ran again (`records`: pair_id -> its done record): regenerate -> undecided (the new
    frames need a look), for each job whose record was made with the regeneration's seed and backend;
    settings kept. A regeneration asked for while the run was under way waits for the next run."""
    if not set(records) & pending_regenerations(run_dir):
        return  # nothing to change: no lock taken, so a read-only run folder is fine
    with _locked(run_dir):
        decisions = load_decisions(run_dir)
        hits = {
            p for p, record in records.items()
            if p in decisions and decisions[p].status == REGENERATE and _made_with(record, decisions[p])
        }  # fmt: skip
        for pid in hits:
            decisions[pid] = replace(
                decisions[pid], status=UNDECIDED, outputs=None, before_regeneration=None, updated_at=_now()
            )
        if hits:
            _save(run_dir, decisions)


def _made_with(record: dict, decision: Decision) -> bool:
    """Whether a job's record was made with the seed and backend a regeneration gave it."""
    if decision.seed is not None and record.get("seed") != decision.seed:
        return False
    return decision.backend is None or decision.backend in (record.get("requested_backend"), record.get("backend"))


def decision_of(decisions: dict[str, Decision], pair_id: str) -> str:
    """The status of `pair_id` (undecided when never decided)."""
    entry = decisions.get(pair_id)
    return entry.status if entry else UNDECIDED


class ReviewFilter:
    """What splice and assemble take of the review: rejected jobs are left out (splice: the source's frames
    stay; assemble: the start key is held), and with `accepted_only` every job not accepted; the edits kept
    carry their decision (for the OTIO/EDL export)."""

    def __init__(self, run_dir: Path, *, accepted_only: bool = False):
        # Splice and assemble judge every job by run/stale.py `published_job` before asking this: nothing is
        # checked twice here.
        self.decisions = current_decisions(run_dir, unusable={})
        self.accepted_only = accepted_only

    def why_left_out(self, pair_id: str) -> str:
        """Why the review leaves `pair_id`'s frames out; "" when they are taken."""
        status = decision_of(self.decisions, pair_id)
        if status == REJECTED:
            return "rejected in review"
        if self.accepted_only and status != ACCEPTED:
            return f"{status} in review (--accepted-only takes accepted jobs only)"
        return ""

    def apply(self, edit):  # an Edit (splice/runfolder.py); untyped here so review does not import splice
        """(edit with its decision, "") to splice it, or (None, why) to leave it out."""
        why = self.why_left_out(edit.pair_id)
        if why:
            return None, why
        return replace(edit, decision=decision_of(self.decisions, edit.pair_id)), ""
