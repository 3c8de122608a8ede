"""The review page: the standard library's HTTP server on 127.0.0.1, the page and its script from
semfi_batch/review/static (no CDN: it works offline), a small JSON API for cards and decisions, and the
pictures.

    GET  /                          the page            GET /api/jobs       cards (JSON)
    POST /api/decide                {"pair_ids": [...], "decision": "accepted"|"rejected"|"undecided"|
                                     "regenerate", "seed": int or its digits?, "backend": str?} -> updated cards
    GET  /job/<id>/generated/<n>    generated frame n   GET /job/<id>/original/<n>   original frame n
    GET  /job/<id>/key/start|end    keyframes           GET /job/<id>/preview.gif    spliced preview

A job's pictures (generated frames, keys, preview) take `?outputs=<digest>`, the digest of the outputs the
card shows (run/ledger.py `outputs_digest`): the URL changes when the frames do, so a browser never shows a
picture it decoded before for the same URL, and the server sends the picture only while the job's record
lists those outputs, and a frame only when its bytes are the ones listed (409 otherwise). An accept names
the same digest, so it is made on the frames the page showed.

Requests must name this server as Host (a web page elsewhere cannot reach it through DNS rebinding), and a
decision must come as application/json, which browsers never send cross-site without a preflight that this
server does not answer."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from semfi_batch.errors import OutputPathError, SemfiError
from semfi_batch.review.cards import RunReview
from semfi_batch.review.decisions import ACCEPTED, REJECTED, STATUSES, DecisionError, OtherFramesNow, decide, seed_value
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.ledger import outputs_digest

STATIC = Path(__file__).with_name("static")
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/review.js": ("review.js", "text/javascript; charset=utf-8"),
          "/static/review.css": ("review.css", "text/css; charset=utf-8")}  # fmt: skip
PICTURE = re.compile(
    r"^/job/(?P<pid>[^/]+)/(?:(?P<kind>generated|original)/(?P<n>\d+)|key/(?P<key>start|end)|preview\.gif)$"
)
MAX_BODY = 1 << 20


class ReviewServer(ThreadingHTTPServer):
    """Serves one run folder's review page until shut down."""

    daemon_threads = True

    def __init__(self, review: RunReview, port: int = 0, backends: list[str] | None = None):
        super().__init__(("127.0.0.1", port), _Handler)
        self.review = review
        self.backends = backends or []
        # Warp error per job with the digest of the outputs it was measured on: a job made again since has
        # no figure until it is measured again (in the background, when the cards are next asked for).
        self.quality: dict[str, tuple[str, float]] = {}
        self.quality_pending = False
        self._quality_failed = False
        self._quality_lock = threading.Lock()
        self.pictures_lock = threading.Lock()  # one decode at a time: the machine is shared with the run

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def measure_quality(self) -> None:
        """Warp error per finished job (cached in the run folder by the report), for the 'worst first' order;
        does nothing while a measurement is under way."""
        from semfi_batch.report import job_quality

        with self._quality_lock:
            if self.quality_pending:
                return
            self.quality_pending = True
        try:
            before = self._outputs_now()
            measured = job_quality(self.review.run_dir)
            after = self._outputs_now()  # a job made again meanwhile: its figure may be of either: none kept
            self.quality = {
                pid: (before[pid], value) for pid, value in measured.items()
                if before.get(pid) is not None and before[pid] == after.get(pid)
            }  # fmt: skip
        except Exception:  # noqa: BLE001 - the page works without the figure; the card says so
            self.quality, self._quality_failed = {}, True
        finally:
            self.quality_pending = False

    def measure_quality_if_stale(self, cards: list) -> None:
        """Measure again in the background when a finished job's outputs are not those its figure was measured on."""
        stale = any(c.outputs and self.quality.get(c.pair_id, (None,))[0] != c.outputs for c in cards)
        if stale and not self.quality_pending and not self._quality_failed:
            threading.Thread(target=self.measure_quality, daemon=True).start()

    def _outputs_now(self) -> dict[str, str | None]:
        return {pid: outputs_digest(self.review.record(pid)) for pid in self.review.pairs}


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal shows the URL; a line per picture would bury it

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").lower()
        port = self.server.server_address[1]
        return host in (f"127.0.0.1:{port}", f"localhost:{port}")

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        self._answer(self._post)

    def _answer(self, handle) -> None:
        """Run `handle`; whatever it raises is answered (500, the message as JSON, which the page shows), never
        a dropped connection: an unreadable decisions.json or a broken manifest says what is wrong, as the CLI
        does."""
        try:
            handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a page reloaded mid-picture): nobody to answer
        except Exception as exc:  # noqa: BLE001 - a broken run folder, or a bug: said, never a dropped connection
            message = str(exc)
            if not isinstance(exc, (SemfiError, OSError)):
                message = f"internal error: {type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, message)

    def _get(self) -> None:
        if not self._host_ok():
            return self._send_error(HTTPStatus.FORBIDDEN, "wrong Host")
        url = urlsplit(self.path)
        path = url.path
        if path in ASSETS:
            name, ctype = ASSETS[path]
            return self._send(HTTPStatus.OK, (STATIC / name).read_bytes(), ctype)
        if path == "/api/jobs":
            return self._send_json(self._jobs())
        match = PICTURE.match(path)
        if match is None:
            return self._send_error(HTTPStatus.NOT_FOUND, "not found")
        pid = unquote(match["pid"])
        review = self.server.review
        if pid not in review.pairs:  # only the manifest's ids: nothing outside the run folder is served
            return self._send_error(HTTPStatus.NOT_FOUND, "no such job")
        try:
            if match["kind"] == "generated":
                file = review.generated_frame(pid, int(match["n"]))
            elif match["kind"] == "original":
                with self.server.pictures_lock:
                    file = review.original_frame(pid, int(match["n"]))
            elif match["key"]:
                file = review.keyframe(pid, match["key"])
            else:
                with self.server.pictures_lock:
                    file = review.preview(pid)
            if file is not None:
                file = RunLayout(review.run_dir).confine(file)  # never a file from outside the run folder
        except OutputPathError as exc:
            return self._send_error(HTTPStatus.FORBIDDEN, f"not served: {exc}")
        except (SemfiError, OSError) as exc:
            return self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
        if file is None:
            return self._send_error(HTTPStatus.NOT_FOUND, "not available")
        data = file.read_bytes()
        shown = parse_qs(url.query).get("outputs")
        if shown and match["kind"] != "original" and not self._outputs_listed(pid, shown[0], file, data):
            return self._send_error(HTTPStatus.CONFLICT, f"{pid} has other frames than the page shows: reload the page")
        ctype = "image/gif" if file.suffix == ".gif" else "image/png"
        return self._send(HTTPStatus.OK, data, ctype, cache=False)

    def _outputs_listed(self, pair_id: str, digest: str, file: Path, data: bytes) -> bool:
        """Whether the job's record lists the outputs `digest` names and, for one of its files, these bytes."""
        record = self.server.review.record(pair_id)
        if outputs_digest(record) != digest:
            return False
        try:
            listed = record["outputs"].get(file.relative_to(self.server.review.run_dir / "jobs" / pair_id).as_posix())
        except ValueError:  # the preview: drawn from the outputs, cached under their digest (cards.py)
            return True
        return isinstance(listed, dict) and listed.get("sha256") == hashlib.sha256(data).hexdigest()

    def _post(self) -> None:
        if not self._host_ok():
            return self._send_error(HTTPStatus.FORBIDDEN, "wrong Host")
        if urlsplit(self.path).path != "/api/decide":
            return self._send_error(HTTPStatus.NOT_FOUND, "not found")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self._send_error(HTTPStatus.BAD_REQUEST, "empty or oversized body")
        try:
            body = json.loads(self.rfile.read(length))
            if not isinstance(body, dict) or not isinstance(body.get("pair_ids"), list):
                raise TypeError("send an object with pair_ids, a list of job ids")
            pair_ids = [str(p) for p in body["pair_ids"]]
            status = str(body["decision"])
            seed = body.get("seed")
            seed = seed_value(seed) if seed not in (None, "") else None
            backend = body.get("backend") or None
            if backend is not None and not isinstance(backend, str):
                raise TypeError(f"backend must be a backend's name, got {backend!r}")
            # The outputs the page showed, per job: an accept or reject is made on those or refused.
            seen = body.get("outputs")
            seen = {str(k): (str(v) if v else None) for k, v in seen.items()} if seen is not None else None
            if seen is None and status in (ACCEPTED, REJECTED):
                raise KeyError("outputs (the digest of the frames the page showed, per job)")
        except DecisionError as exc:
            return self._send_error(HTTPStatus.BAD_REQUEST, str(exc))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return self._send_error(HTTPStatus.BAD_REQUEST, f"bad request: {exc}")
        if status not in STATUSES:
            return self._send_error(HTTPStatus.BAD_REQUEST, f"unknown decision {status!r}")
        review = self.server.review
        review.refresh()
        try:
            decide(
                review.run_dir, pair_ids, status, seed=seed, backend=backend,
                known_ids=review.pairs, known_backends=self.server.backends or None, seen=seen,
            )  # fmt: skip
        except OtherFramesNow as exc:
            return self._send_error(HTTPStatus.CONFLICT, str(exc))
        except DecisionError as exc:
            return self._send_error(HTTPStatus.BAD_REQUEST, str(exc))
        except (SemfiError, OSError) as exc:  # a full disk, a read-only run folder
            return self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot save the decision: {exc}")
        cards = [c for c in self._jobs()["jobs"] if c["pair_id"] in set(pair_ids)]
        return self._send_json({"jobs": cards})

    def _jobs(self) -> dict:
        review = self.server.review
        cards = review.cards(self.server.quality)
        self.server.measure_quality_if_stale(cards)
        return {
            "run": str(review.run_dir),
            "run_command": review.rerun_command(),
            "backends": self.server.backends,
            "quality_pending": self.server.quality_pending,
            "jobs": [c.as_json() for c in cards],
        }

    def _send_json(self, data: dict, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send_json({"error": message}, status)

    def _send(self, status: HTTPStatus, body: bytes, ctype: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if not cache else "max-age=3600")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)
