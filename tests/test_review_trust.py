"""The review page and `review --list` judge a job as report and splice do: a job whose source was replaced under
the same name (stale) or whose files no longer match its record (damaged) is shown as such, with the reason, its
pictures are not paired with the row's originals, and it cannot be accepted or rejected. The server answers every
request, a malformed one with 400 and a broken run folder with 500, and sends no file from outside the run."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request

import pytest

from semfi_batch.cli import main
from semfi_batch.review.cards import RunReview
from semfi_batch.review.decisions import DecisionError, current_decisions, decide
from semfi_batch.review.server import ReviewServer
from tests.conftest import numbered_clip
from tests.review_run import make_run

UNUSABLE = "stale or damaged"  # a job splice leaves out, as report and review show it


@pytest.fixture
def run_dir(tmp_path):
    """A finished run that a test may damage (its record names its clip by absolute path: made anew each time)."""
    return make_run(tmp_path)


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, body = res.status, res.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, json.loads(body) if body.startswith(b"{") else {"raw": body.decode(errors="replace")}


@pytest.fixture
def serve():
    servers = []

    def start(run_dir) -> str:
        server = ReviewServer(RunReview(run_dir), port=0, backends=["blend"])
        server.quality_pending = True  # no background measurement: the tests change the run folder under it
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def cards(run_dir) -> dict:
    return {c.pair_id: c for c in RunReview(run_dir).cards()}


def test_a_job_whose_source_was_replaced_is_stale_and_cannot_be_accepted(run_dir, serve, capsys):
    decide(run_dir, ["a_flash"], "accepted")
    numbered_clip(run_dir.parent / "clip.mp4", 45)  # other content under the same name, not run again
    card = cards(run_dir)["a_flash"]
    assert card.status == UNUSABLE and "clip.mp4 was replaced or changed" in card.unusable
    # The old job's frames are not shown beside the new source's originals, and there is nothing to decide on.
    assert (card.frames, card.outputs, card.key_images) == (0, None, [])
    assert (card.decision, card.decided_earlier) == ("undecided", "accepted")
    assert current_decisions(run_dir)["a_flash"].status == "undecided"
    with pytest.raises(DecisionError, match="cannot reject b_black: stale job: .*clip.mp4 was replaced"):
        decide(run_dir, ["b_black"], "rejected")
    url = serve(run_dir)
    status, data = request(url + "api/jobs")
    shown = {j["pair_id"]: j for j in data["jobs"]}
    assert status == 200 and shown["a_flash"]["status"] == UNUSABLE and shown["a_flash"]["unusable"]
    body = {"pair_ids": ["a_flash"], "decision": "accepted", "outputs": {"a_flash": shown["a_flash"]["outputs"]}}
    status, data = request(url + "api/decide", json.dumps(body).encode())
    assert status == 400 and "cannot accept a_flash: stale job" in data["error"]
    assert main(["review", str(run_dir), "--list"]) == 0
    out = capsys.readouterr().out
    assert "was accepted: stale or damaged" in out
    assert "a_flash: stale or damaged, left out by splice: stale job:" in out


def test_a_job_with_a_frame_changed_by_hand_is_damaged(run_dir):
    decide(run_dir, ["b_black"], "accepted")
    assert cards(run_dir)["b_black"].status == "done"
    frame = run_dir / "jobs" / "b_black" / "frames" / "000002.png"
    frame.write_bytes(frame.read_bytes() + b"\0")  # edited by hand: its size differs from the record's
    card = cards(run_dir)["b_black"]
    assert card.status == UNUSABLE and "frames/000002.png has" in card.unusable and card.frames == 0
    assert card.decision == "undecided" and card.decided_earlier == "accepted"
    with pytest.raises(DecisionError, match="cannot accept b_black: its job folder does not match its record"):
        decide(run_dir, ["b_black"], "accepted")
    frame.write_bytes(frame.read_bytes()[:-1])  # put back: the accept holds again
    assert cards(run_dir)["b_black"].decision == "accepted"


def test_a_verdict_kept_between_requests_follows_the_files(run_dir):
    review = RunReview(run_dir)  # one page: its verdicts are kept while the files stand as they did
    assert {c.status for c in review.cards()} == {"done"}
    frame = run_dir / "jobs" / "c_cut" / "frames" / "000001.png"
    data = frame.read_bytes()
    frame.unlink()
    os.symlink(run_dir / "jobs" / "a_flash" / "frames" / "000001.png", frame)  # not the record's plain file
    assert {c.pair_id: c.status for c in review.cards()}["c_cut"] == UNUSABLE
    frame.unlink()
    frame.write_bytes(data)
    assert {c.pair_id: c.status for c in review.cards()}["c_cut"] == "done"
    (run_dir / "jobs" / "c_cut" / "frames" / "000009.png").write_bytes(data)  # one frame too many
    assert {c.pair_id: c.status for c in review.cards()}["c_cut"] == UNUSABLE


def test_no_file_from_outside_the_run_folder_is_served(run_dir, serve, tmp_path):
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(b"SECRET outside the run folder")
    for name in ("frames/000002.png", "start.png"):
        path = run_dir / "jobs" / "b_black" / name
        path.unlink()
        os.symlink(secret, path)
    url = serve(run_dir)
    for picture in ("generated/2", "key/start", "preview.gif"):
        status, data = request(url + f"job/b_black/{picture}")
        assert status in (403, 404) and "SECRET" not in json.dumps(data), picture
    review = RunReview(run_dir)
    assert review.generated_frame("b_black", 2) is None and review.keyframe("b_black", "start") is None
    assert review.generated_frame("b_black", 1) is not None


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"pair_ids": ["a_flash"], "decision": "regenerate", "backend": ["blend"]}, {}),
        ({"pair_ids": ["a_flash"], "decision": "regenerate", "backend": {"a": 1}}, {}),
        ({"pair_ids": "a_flash", "decision": "undecided"}, {}),
        ([], {}),
        ({}, {"Content-Length": "abc"}),
    ],
)
def test_a_malformed_decision_is_answered_400(run_dir, serve, body, headers):
    url = serve(run_dir)
    data = json.dumps(body).encode()
    if "Content-Length" in headers:  # urllib sends its own length: a raw request instead
        import http.client

        conn = http.client.HTTPConnection(url.split("//")[1].rstrip("/"), timeout=30)
        conn.putrequest("POST", "/api/decide")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", headers["Content-Length"])
        conn.endheaders()
        res = conn.getresponse()
        status, answer = res.status, json.loads(res.read())
        conn.close()
    else:
        status, answer = request(url + "api/decide", data)
    assert status == 400 and answer["error"]
    assert request(url + "api/jobs")[0] == 200  # the server goes on


def test_a_broken_run_folder_is_answered_500_with_what_is_wrong(run_dir, serve):
    url = serve(run_dir)
    (run_dir / "decisions.json").write_text("{not json")
    status, answer = request(url + "api/jobs")
    assert status == 500 and "decisions.json is not a decisions file" in answer["error"]
    (run_dir / "decisions.json").unlink()
    (run_dir / "manifest.parquet").write_bytes(b"not a parquet file")
    status, answer = request(url + "api/jobs")
    assert status == 500 and answer["error"]
    body = json.dumps({"pair_ids": ["a_flash"], "decision": "undecided"}).encode()
    assert request(url + "api/decide", body)[0] == 500


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_an_option_error(run_dir, port, capsys):
    assert main(["review", str(run_dir), "--no-browser", "--port", port]) == 2
    assert "--port must be from 0" in capsys.readouterr().err
