"""Review: timecode, the decisions store, the scriptable CLI and the page's HTTP API on a real tiny run."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from semfi_batch.cli import main
from semfi_batch.media.frames import read_image
from semfi_batch.review.cards import RunReview
from semfi_batch.review.decisions import DecisionError, OtherFramesNow, decide, load_decisions, mark_regenerated
from semfi_batch.review.server import ReviewServer
from semfi_batch.review.timecode import timecode
from tests.conftest import frame_number
from tests.review_run import make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("review"))


@pytest.mark.parametrize(
    ("frame", "fps", "expected"),
    [
        (0, 25, "00:00:00:00"),
        (49, 25, "00:00:01:24"),
        (90_000, 25, "01:00:00:00"),
        (100, 24000 / 1001, "00:00:04:04"),  # 23.976: counted at 24, no drop
        (1799, 29.97, "00:00:59;29"),
        (1800, 29.97, "00:01:00;02"),  # frame numbers 00 and 01 dropped at minute 1
        (17982, Fraction(30000, 1001), "00:10:00;00"),  # ...but not at minute 10
        (3600, 59.94, "00:01:00;04"),
        (107892, 29.97, "01:00:00;00"),
    ],
)
def test_timecode(frame, fps, expected):
    assert timecode(frame, fps) == expected


def test_decisions_are_saved_atomically_and_validated(tmp_path):
    decide(tmp_path, ["x", "y"], "undecided")
    first = decide(tmp_path, ["z", "w"], "regenerate")["z"]
    second = decide(tmp_path, ["z"], "regenerate", backend="flow")["z"]
    stored = load_decisions(tmp_path)
    assert {p: d.status for p, d in stored.items()} == {"x": "undecided", "y": "undecided", "z": "regenerate",
                                                        "w": "regenerate"}  # fmt: skip
    assert first.seed != second.seed and second.regenerations == 2 and second.backend == "flow"
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]  # nothing left of the temporary file
    # z ran with its new settings; w's run was planned before its regeneration (its old seed): it waits
    w_seed = stored["w"].seed
    mark_regenerated(tmp_path, {"z": {"seed": second.seed, "backend": "flow"}, "w": {"seed": w_seed + 1}})
    stored = load_decisions(tmp_path)
    assert stored["z"].status == "undecided" and stored["z"].seed == second.seed  # settings kept for the key
    assert stored["w"].status == "regenerate"
    for verb in ("accepted", "rejected"):  # nothing to decide on: no job folder
        with pytest.raises(DecisionError, match=f"x has no finished frames to {verb[:6]}"):
            decide(tmp_path, ["x"], verb)
    with pytest.raises(DecisionError, match="no such job in this run: nope"):
        decide(tmp_path, ["nope"], "accepted", known_ids=["x"])
    with pytest.raises(DecisionError, match="unknown backend 'bogus'"):
        decide(tmp_path, ["x"], "regenerate", backend="bogus", known_backends=["flow"])
    (tmp_path / "decisions.json").write_text("{not json")
    with pytest.raises(DecisionError, match="is not a decisions file"):
        load_decisions(tmp_path)


def test_scriptable_review(run_dir, capsys):
    assert main(["review", str(run_dir), "--accept", "a_flash", "--reject", "b_black"]) == 0
    assert main(["review", str(run_dir), "--regenerate", "c_cut", "--seed", "7", "--backend", "flow"]) == 0
    stored = load_decisions(run_dir)
    assert stored["a_flash"].status == "accepted" and stored["b_black"].status == "rejected"
    assert stored["c_cut"].status == "regenerate" and stored["c_cut"].overrides == (7, "flow")
    capsys.readouterr()
    assert main(["review", str(run_dir), "--list"]) == 0
    table = capsys.readouterr().out
    lines = {line.split()[0]: line for line in table.splitlines() if line.split() and "_" in line.split()[0]}
    assert "accepted" in lines["a_flash"] and "00:00:00:13" in lines["a_flash"] and "flash" in lines["a_flash"]
    assert "rejected" in lines["b_black"] and "regenerate" in lines["c_cut"] and "seed 7, flow" in lines["c_cut"]
    assert main(["review", str(run_dir), "--accept", "nope"]) == 2
    assert "no such job in this run: nope" in capsys.readouterr().err
    assert main(["review", str(run_dir), "--accept", "a_flash", "--reject", "a_flash"]) == 2  # a usage error
    assert main(["review", str(run_dir), "--undecide", "a_flash", "b_black", "c_cut"]) == 0
    assert main(["review", str(run_dir), "--accept-all"]) == 0
    assert {d.status for d in load_decisions(run_dir).values()} == {"accepted"}
    (run_dir / "decisions.json").unlink()


def test_cards_in_source_order_with_pictures(run_dir):
    review = RunReview(run_dir)
    cards = review.cards()
    assert [c.pair_id for c in cards] == ["a_flash", "b_black", "c_cut"]
    a = cards[0]
    assert (a.reason, a.score, a.timecode_in, a.timecode_out, a.backend) == ("flash", 41.25, "00:00:00:13",
                                                                             "00:00:00:15", "blend")  # fmt: skip
    assert a.originals == 3 and a.frames == 3 and cards[2].originals == 0  # inserts replace nothing
    originals = [frame_number(read_image(review.original_frame("a_flash", n))) for n in (1, 2, 3)]
    assert originals == [13, 14, 15]  # the frames the replace row swaps out
    preview = Image.open(review.preview("a_flash"))
    shown = []
    for i in range(preview.n_frames):
        preview.seek(i)
        shown.append(np.asarray(preview.convert("RGB")))
    # A second of the source before (clipped at frame 0), the 3 generated frames, a second after.
    assert [frame_number(f) for f in shown[:13]] == list(range(13))
    assert [frame_number(f) for f in shown[16:]] == list(range(16, 40))  # clipped at the clip's end
    assert [frame_number(f) for f in shown[13:16]] != [13, 14, 15]


def _request(url, data=None, content_type="application/json", host=None):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type} if data else {})
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_server_api(run_dir):
    server = ReviewServer(RunReview(run_dir), port=0, backends=["blend", "flow"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = server.url
        status, body = _request(url + "api/jobs")
        jobs = json.loads(body)["jobs"]
        assert status == 200 and [j["pair_id"] for j in jobs] == ["a_flash", "b_black", "c_cut"]
        shown = {j["pair_id"]: j["outputs"] for j in jobs}
        unseen = json.dumps({"pair_ids": ["b_black"], "decision": "rejected"}).encode()
        assert _request(url + "api/decide", unseen)[0] == 400  # a reject names the frames it was made on
        other = json.dumps({"pair_ids": ["b_black"], "decision": "rejected", "outputs": {"b_black": shown["a_flash"]}})
        status, body = _request(url + "api/decide", other.encode())
        assert status == 409 and b"reload the page" in body  # frames the page did not show
        reject = json.dumps({"pair_ids": ["b_black"], "decision": "rejected", "outputs": shown}).encode()
        status, body = _request(url + "api/decide", reject)
        assert status == 200 and json.loads(body)["jobs"][0]["decision"] == "rejected"
        assert load_decisions(run_dir)["b_black"].status == "rejected"
        form = b"pair_ids=b_black&decision=accepted"  # what a cross-site form could send: refused
        assert _request(url + "api/decide", form, "application/x-www-form-urlencoded")[0] == 415
        assert _request(url + "api/jobs", host="evil.example:80")[0] == 403
        assert _request(url + "job/..%2f..%2fetc/key/start")[0] == 404
        status, body = _request(url + "job/a_flash/generated/1")
        assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
        assert _request(url + "job/c_cut/original/1")[0] == 404  # an insert row has no originals
    finally:
        server.shutdown()
        server.server_close()
        (run_dir / "decisions.json").unlink(missing_ok=True)


def test_decisions_drive_run_and_splice(tmp_path):
    """regenerate -> `run` re-runs that job only, with the new seed and backend, and sets it back to undecided;
    rejected -> splice keeps the source's frames; --accepted-only splices accepted jobs only; OTIO marks each
    edit with its decision."""
    from semfi_batch.backends import BackendOptions
    from semfi_batch.run.engine import run_manifest
    from semfi_batch.run.stale import REGENERATION_PENDING
    from semfi_batch.splice import SpliceOptions, splice_run
    from semfi_batch.splice.otio_export import build_timeline, write_edl
    from tests.media_fixtures import decode_all

    run_dir = make_run(tmp_path)
    before = {p: json.loads((run_dir / "jobs" / p / "record.json").read_text()) for p in ("a_flash", "c_cut")}
    assert main(["review", str(run_dir), "--regenerate", "c_cut", "--seed", "7", "--backend", "flow"]) == 0
    pending = splice_run(run_dir, out_dir=tmp_path / "pending")  # before the run that makes it anew
    assert ("c_cut", REGENERATION_PENDING) in [(s.pair_id, s.why) for s in pending.all_skipped]
    options = BackendOptions(extra={"allow_morph": True})  # as make_run: the cut row is a morph on purpose
    summary = run_manifest(tmp_path / "m.parquet", run_dir, backend="blend", options=options, show_progress=False,
                           preview=False)  # fmt: skip
    assert summary.ran == 1 and summary.done == 3
    after = {p: json.loads((run_dir / "jobs" / p / "record.json").read_text()) for p in ("a_flash", "c_cut")}
    assert (after["c_cut"]["seed"], after["c_cut"]["backend"]) == (7, "flow") and after["c_cut"]["key"] != before[
        "c_cut"]["key"]  # fmt: skip
    assert after["a_flash"] == before["a_flash"]  # the rest left alone
    stored = load_decisions(run_dir)["c_cut"]
    assert stored.status == "undecided" and stored.overrides == (7, "flow")
    again = run_manifest(tmp_path / "m.parquet", run_dir, backend="blend", options=options, show_progress=False,
                         preview=False)  # fmt: skip
    assert again.ran == 0  # the new settings stay part of the key: nothing goes back to the old frames

    assert main(["review", str(run_dir), "--accept", "a_flash", "--reject", "b_black"]) == 0
    spliced = splice_run(run_dir, out_dir=tmp_path / "all")
    assert [(s.pair_id, s.why) for s in spliced.all_skipped] == [("b_black", "rejected in review")]
    numbers = [frame_number(f) for f in decode_all(spliced.results[0].output)]
    assert numbers[27:30] == [27, 28, 29]  # b_black's range is the source's own
    assert numbers[13:16] != [13, 14, 15] and len(numbers) == 43  # a_flash replaced, c_cut inserted 3 frames
    tl = build_timeline(spliced.results[0])
    generated = [c for c in tl.tracks[0] if c.metadata["semfi_batch"]["kind"] == "generated"]
    assert [(c.metadata["semfi_batch"]["pair_id"], c.metadata["semfi_batch"]["decision"]) for c in generated] == [
        ("a_flash", "accepted"), ("c_cut", "undecided")]  # fmt: skip
    assert [m.name for c in generated for m in c.markers] == ["review: accepted", "review: undecided"]
    edl = write_edl(spliced, tmp_path / "edits.edl").read_text()  # markers become LOC lines an NLE shows
    assert "GREEN   REVIEW: ACCEPTED" in edl and "YELLOW  REVIEW: UNDECIDED" in edl and "BBLACK" not in edl

    only = splice_run(run_dir, out_dir=tmp_path / "accepted", options=SpliceOptions(accepted_only=True))
    assert {s.pair_id for s in only.all_skipped} == {"b_black", "c_cut"}
    assert len(decode_all(only.results[0].output)) == 40  # the insert row was left out


def test_a_decision_holds_for_the_frames_it_was_made_on(tmp_path):
    """Accepted and rejected jobs whose rows were edited and run again deliver frames nobody looked at: they
    are undecided again (splice --accepted-only leaves the accepted one out, a plain splice no longer leaves
    the rejected one out). A job run again to the same frames keeps its decision, even under a new key. An
    accept from a page showing the old frames, or of a job folder changed by hand, is refused."""
    from semfi_batch.backends import BackendOptions
    from semfi_batch.manifest import write_manifest
    from semfi_batch.run.engine import run_manifest
    from semfi_batch.splice import SpliceOptions, splice_run
    from tests.review_run import ROWS

    run_dir = make_run(tmp_path)
    assert main(["review", str(run_dir), "--accept", "a_flash", "c_cut", "--reject", "b_black"]) == 0
    rows = [{"source": "clip.mp4", **row} for row in ROWS]
    rows[0]["end_frame"] = 17  # a_flash now replaces 13-16: other frames
    rows[1]["start_frame"] = 25  # b_black now replaces 26-29
    rows[2]["seed"] = 7  # a new key for c_cut, whose blend frames do not depend on the seed
    manifest = write_manifest(rows, tmp_path / "edited.parquet")
    options = BackendOptions(extra={"allow_morph": True})
    summary = run_manifest(manifest, run_dir, backend="blend", options=options, show_progress=False, preview=False,
                           force=True)  # fmt: skip
    assert summary.ran == 3  # c_cut too, to the same frames
    cards = {c.pair_id: c for c in RunReview(run_dir).cards()}
    assert {p: (c.decision, c.decided_earlier) for p, c in cards.items()} == {
        "a_flash": ("undecided", "accepted"),
        "b_black": ("undecided", "rejected"),
        "c_cut": ("accepted", None),
    }
    only = splice_run(run_dir, out_dir=tmp_path / "accepted", options=SpliceOptions(accepted_only=True))
    assert {s.pair_id for s in only.all_skipped} == {"a_flash", "b_black"}
    plain = splice_run(run_dir, out_dir=tmp_path / "all")
    assert not plain.all_skipped  # the rejected frames are gone; the new ones are undecided
    with pytest.raises(OtherFramesNow, match="a_flash has other frames than the page showed"):
        decide(run_dir, ["a_flash"], "accepted", seen={"a_flash": cards["c_cut"].outputs})  # a page left open
    assert main(["review", str(run_dir), "--accept", "a_flash"]) == 0  # a look at the new frames
    assert {c.pair_id: c.decision for c in RunReview(run_dir).cards()}["a_flash"] == "accepted"
    frame = run_dir / "jobs" / "b_black" / "frames" / "000001.png"
    frame.write_bytes((run_dir / "jobs" / "a_flash" / "frames" / "000001.png").read_bytes())  # by hand
    with pytest.raises(DecisionError, match="cannot accept b_black: its job folder does not match its record"):
        decide(run_dir, ["b_black"], "accepted")


@pytest.mark.parametrize("fps", [25, 24000 / 1001, 29.97, 59.94, 50])
def test_timecode_round_trip(fps):
    from semfi_batch.review.timecode import frame_of_timecode

    for frame in (0, 1, 1799, 1800, 1801, 17982, 107892, 123456):
        assert frame_of_timecode(timecode(frame, fps), fps) == frame


def test_the_command_to_regenerate_is_printed_ready_to_paste(tmp_path, capsys):
    # It was printed unquoted: a path with a space, pasted, ran `run` on the wrong arguments.
    import shlex

    from tests.review_run import make_run

    run_dir = make_run(tmp_path / "my shots")
    capsys.readouterr()
    assert main(["review", str(run_dir), "--regenerate", "a_flash"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "run again:" in ln)
    words = shlex.split(line.split("run again:", 1)[1])
    assert words[:2] == ["semfi-batch", "run"] and words[3:5] == ["--out", str(run_dir)]
    assert words[2].endswith("my shots/m.parquet")
    # With the run's own settings: pasted as printed, `run` was refused for another --backend (exit 2).
    assert words[5:7] == ["--backend", "blend"]


def test_pictures_are_sent_only_for_the_outputs_the_page_names(tmp_path):
    # Picture URLs named no outputs: after a job ran again the page showed old pictures under the same URL.
    run_dir = make_run(tmp_path)
    server = ReviewServer(RunReview(run_dir), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        old = json.loads(_request(server.url + "api/jobs")[1])["jobs"][0]["outputs"]
        frame = server.url + "job/a_flash/generated/1?outputs="
        assert _request(frame + old)[0] == 200
        new = give_other_frames(run_dir, "a_flash")
        status, body = _request(frame + old)
        assert status == 409 and b"reload the page" in body
        assert _request(frame + new)[0] == 200
        assert _request(server.url + f"job/a_flash/key/start?outputs={new}")[0] == 200
        (run_dir / "jobs" / "a_flash" / "frames" / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\nnot these")
        assert _request(frame + new)[0] == 409  # bytes other than the record lists
    finally:
        server.shutdown()
        server.server_close()


def give_other_frames(run_dir, pair_id) -> str:
    """What `run` remaking a job leaves behind an open page: other frames (here inverted) and a record listing
    them; returns the new outputs digest."""
    import hashlib

    from semfi_batch.run.ledger import outputs_digest

    job = run_dir / "jobs" / pair_id
    record = json.loads((job / "record.json").read_text())
    for path in sorted((job / "frames").glob("*.png")):
        with Image.open(path) as im:
            Image.fromarray(255 - np.asarray(im)).save(path)
        record["outputs"][f"frames/{path.name}"] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                                     "size": path.stat().st_size}  # fmt: skip
    record["finished_at"] = "2099-01-01T00:00:00+0000"  # the run that made them finished later
    (job / "record.json").write_text(json.dumps(record))
    return outputs_digest(record)


def test_a_regeneration_taken_back_before_the_run_is_cancelled(tmp_path):
    # Accept (or undecided) after regenerate kept the regeneration's seed and backend: the next run remade
    # the job with them, and the frames the editor had accepted were gone.
    from semfi_batch.backends import BackendOptions
    from semfi_batch.review.decisions import regeneration_overrides
    from semfi_batch.run.engine import run_manifest

    run_dir = make_run(tmp_path)
    decide(run_dir, ["a_flash", "b_black"], "regenerate", seed=9, backend="flow")
    decide(run_dir, ["a_flash"], "accepted")
    decide(run_dir, ["b_black"], "undecided")
    assert regeneration_overrides(run_dir) == {}
    options = BackendOptions(extra={"allow_morph": True})
    summary = run_manifest(tmp_path / "m.parquet", run_dir, backend="blend", options=options, show_progress=False,
                           preview=False)  # fmt: skip
    assert summary.ran == 0
    assert {c.pair_id: c.decision for c in RunReview(run_dir).cards()}["a_flash"] == "accepted"
    # A job that already ran with a regeneration goes back to that one's settings, not to the row's.
    decide(tmp_path, ["z"], "regenerate", seed=7)
    mark_regenerated(tmp_path, {"z": {"seed": 7}})
    decide(tmp_path, ["z"], "regenerate", seed=8)
    decide(tmp_path, ["z"], "regenerate", backend="flow", seed=9)
    decide(tmp_path, ["z"], "undecided")
    assert regeneration_overrides(tmp_path) == {"z": (7, None)}


def test_the_page_api_takes_seeds_as_exact_whole_numbers(tmp_path):
    # int(seed) made "1.5" (or 1.5) seed 1 without a word; a negative seed was refused naming the CLI's --seed.
    run_dir = make_run(tmp_path)
    server = ReviewServer(RunReview(run_dir), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for seed in ("1.5", 1.5, "-3", -3, True, "1e3", str(2**63)):
            body = json.dumps({"pair_ids": ["c_cut"], "decision": "regenerate", "seed": seed}).encode()
            status, answer = _request(server.url + "api/decide", body)
            assert status == 400 and "the seed must be a whole number" in json.loads(answer)["error"], seed
        assert not (run_dir / "decisions.json").exists()
        body = json.dumps({"pair_ids": ["c_cut"], "decision": "regenerate", "seed": "6797872655438013659"})
        status, answer = _request(server.url + "api/decide", body.encode())
        assert status == 200 and json.loads(answer)["jobs"][0]["next_seed"] == "6797872655438013659"
        assert load_decisions(run_dir)["c_cut"].seed == 6797872655438013659
    finally:
        server.shutdown()
        server.server_close()


def test_the_warp_error_shown_is_of_the_frames_shown(tmp_path):
    # Measured once when review started, keyed by pair_id only: a job made again kept its old frames' figure.
    import time

    from semfi_batch.report import job_quality

    run_dir = make_run(tmp_path)
    server = ReviewServer(RunReview(run_dir), port=0)
    server.measure_quality()
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def warp_of_a_flash():
        return next(j for j in json.loads(_request(server.url + "api/jobs")[1])["jobs"] if j["pair_id"] == "a_flash")[
            "warp_error"
        ]

    try:
        old = warp_of_a_flash()
        give_other_frames(run_dir, "a_flash")
        assert warp_of_a_flash() is None  # not the old frames' figure; measured again in the background
        deadline = time.time() + 30
        while server.quality_pending and time.time() < deadline:
            time.sleep(0.1)
        new = warp_of_a_flash()
        assert new == pytest.approx(job_quality(run_dir)["a_flash"]) and new != pytest.approx(old)
    finally:
        server.shutdown()
        server.server_close()


def test_the_pages_command_to_regenerate_runs_as_shown(tmp_path):
    # It named the manifest and --out only: a run made with --backend blend refused it (other settings, exit 2),
    # and without the run's --allow-morph the regenerated cut row (a morph on purpose) failed.
    import shlex

    run_dir = make_run(tmp_path / "my shots")
    shutil.rmtree(run_dir)  # made again as the editor did, by the command line
    manifest = str(tmp_path / "my shots" / "m.parquet")
    assert main(["run", manifest, "--out", str(run_dir), "--backend", "blend", "--allow-morph", "--quiet"]) == 0
    decide(run_dir, ["c_cut"], "regenerate", seed=5)
    server = ReviewServer(RunReview(run_dir), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        command = json.loads(_request(server.url + "api/jobs")[1])["run_command"]
    finally:
        server.shutdown()
        server.server_close()
    words = shlex.split(command)
    assert words[:2] == ["semfi-batch", "run"] and words[words.index("--out") + 1] == str(run_dir)
    assert "--allow-morph" in words
    assert main([*words[1:], "--quiet"]) == 0
    assert json.loads((run_dir / "jobs" / "c_cut" / "record.json").read_text())["seed"] == 5
