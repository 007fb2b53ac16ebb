"""The explorer's Flask app: one static page and a small JSON API over an `Explorer`.

Safety for a local tool: loopback by default, a Host-header check against DNS rebinding, POSTs must
carry the X-Cnnlab header (a cross-site form cannot set it), uploads are size-limited and accepted
only when they decode as images, clients name bundled photos (never paths), and every bad request
gets one JSON error with a 4xx status while the server keeps serving. A busy server answers 503 with
Retry-After; a computation whose client closed its connection (the page aborts superseded requests)
stops at its next forward pass.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import CnnlabError, unknown
from ..parsing import parse_fraction
from .engine import Busy, Cancelled, ExpiredImage, Explorer, InputImage, Job

STATIC = Path(__file__).with_name("static")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
log = logging.getLogger("cnnlab.serve")


def is_loopback(host: str) -> bool:
    """True for addresses only this computer can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]") in LOOPBACK_NAMES or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(explorer: Explorer, max_upload_mb: float = 16, check_host: bool = True) -> Flask:
    """The Flask app serving the page and /api/* for one Explorer."""
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    app.config["EXPLORER"] = explorer
    app.json.sort_keys = False
    limit_text = f"{max_upload_mb:g} MB"

    def error(message: str, status: int, code: str = "bad_request"):
        return jsonify({"error": message, "code": code}), status

    @app.before_request
    def guard():
        if check_host:
            host = urlsplit(f"//{request.host}").hostname or ""
            if not is_loopback(host):
                return error(f"Host '{request.host}' is not allowed; open the explorer at http://127.0.0.1.", 403,
                             "forbidden_host")
        if request.method == "POST" and request.headers.get("X-Cnnlab") != "1":
            return error("POST requests must carry the header 'X-Cnnlab: 1' (the explorer page sends it).", 403,
                         "missing_header")
        return None

    @app.after_request
    def headers(resp):
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data: blob:; "
                                                   "style-src 'self'; script-src 'self'; connect-src 'self'")
        return resp

    @app.errorhandler(ExpiredImage)
    def expired(e):
        return error(str(e), 410, "expired")

    @app.errorhandler(Busy)
    def busy(e):
        resp, status = error(str(e), 503, "busy")
        resp.headers["Retry-After"] = str(e.retry_after)
        return resp, status

    @app.errorhandler(Cancelled)
    def cancelled(e):
        return error(str(e), 503, "cancelled")

    @app.errorhandler(CnnlabError)
    def user_error(e):
        return error(str(e), 400)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(e):
        return error(f"The upload is larger than the {limit_text} limit; send a smaller image.", 413, "too_large")

    @app.errorhandler(HTTPException)
    def http_error(e):
        if e.code == 404:
            return error(f"No such page or API endpoint: {request.path}.", 404, "not_found")
        if e.code == 405:
            return error(f"{request.path} does not accept {request.method} requests.", 405, "method_not_allowed")
        return error(e.description or e.name, e.code or 400, "http_error")

    @app.errorhandler(Exception)
    def internal(e):
        log.error("explorer request %s failed:\n%s", request.path, traceback.format_exc())
        return error(f"Internal error while handling {request.path} ({type(e).__name__}: {e}); the server is "
                     "still running.", 500, "internal")

    # -- the page -----------------------------------------------------------------------------------
    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html", max_age=0)

    # -- the API ------------------------------------------------------------------------------------
    @app.get("/api/model")
    def model_info():
        return jsonify(explorer.info())

    @app.get("/api/photos")
    def photos():
        return jsonify({"photos": explorer.photos()})

    @app.get("/api/classes")
    def classes():
        limit = _int(request.args.get("limit", "30"), "limit", 1, 1000)
        return jsonify({"classes": explorer.classes(request.args.get("q", ""), limit)})

    @app.post("/api/predict")
    def predict():
        k = _int(_param("k", "5"), "k", 1, 20)
        return jsonify(explorer.predict(_image(explorer), k=k, job=_job(explorer)))

    @app.post("/api/explain")
    def explain():
        item = _image(explorer)
        method = _param("method", "gradient")
        if method not in (m := explorer.info()["explain_methods"]):
            raise unknown("explanation method", method, m)
        return jsonify(explorer.explain(item, method, _param("target") or None, _param("layer") or None,
                                        job=_job(explorer)))

    @app.post("/api/featmaps")
    def featmaps():
        item = _image(explorer)
        return jsonify(explorer.featmaps(item, _param("layer", "middle") or "middle",
                                         _int(_param("k", "16"), "k", 1, 64), job=_job(explorer)))

    @app.post("/api/attack")
    def attack():
        item = _image(explorer)
        method = _param("method", "pgd") or "pgd"
        l2 = method.endswith("-l2")  # L2 radii are in pixel units summed over the image: may exceed 1
        eps = parse_fraction(_param("eps", "0.5" if l2 else "4/255"), "eps", hi=100.0 if l2 else 1.0)
        steps = _int(_param("steps", "10"), "steps", 1, 10_000)
        return jsonify(explorer.attack(item, method, eps=eps, steps=steps,
                                       target=_param("target") or None, job=_job(explorer)))

    return app


def _job(explorer: Explorer) -> Job:
    """This request's Job: the explorer's deadline, and a test for a client that closed its connection."""
    return explorer.job(_connection_closed(request.environ.get("werkzeug.socket")))


def _connection_closed(sock: socket.socket | None) -> Callable[[], bool] | None:
    """A test that says whether the client closed the connection `sock` (None where the server gives no
    socket, e.g. Flask's test client): its request was read in full, so a readable end of stream (or a
    reset) means the client has gone; no data yet means it is still waiting for the answer."""
    if sock is None:
        return None

    def closed() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # reset by the peer, or the server closed it
            return True
    return closed


def _param(name: str, default: str | None = None) -> str | None:
    """A request parameter from the form, the JSON body or the query string."""
    if name in request.form:
        return request.form[name].strip()
    body = request.get_json(silent=True) if request.is_json else None
    if isinstance(body, dict) and body.get(name) is not None:
        return str(body[name]).strip()
    return request.args.get(name, default)


def _int(value: str | None, name: str, lo: int, hi: int) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise CnnlabError(f"Parameter '{name}'='{value}' is not a whole number.") from None
    if not lo <= n <= hi:
        raise CnnlabError(f"Parameter '{name}'={n} must be between {lo} and {hi}.")
    return n


def _image(explorer: Explorer) -> InputImage:
    """The request's image: an uploaded file ('image'), a bundled photo by name ('photo') or an 'image_id'."""
    upload = request.files.get("image")
    if upload is not None:
        data = upload.read()
        return explorer.add_upload(data, _safe_name(upload.filename))
    photo = _param("photo")
    if photo:
        return explorer.add_photo(photo)
    image_id = _param("image_id")
    if image_id:
        return explorer.get(image_id)
    raise CnnlabError("Send an image: a file in the form field 'image', a bundled photo name in 'photo', "
                      "or the 'image_id' that /api/predict returned.")


def _safe_name(filename: str | None) -> str:
    """Only the base name of an uploaded file, for display (never used as a path)."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in name if c.isprintable())[:80] or "upload"
