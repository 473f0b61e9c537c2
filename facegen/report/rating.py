"""A human rating session: real and edited faces shown shuffled on a local page, the rater's "real / edited"
answers appended to a CSV, and the rater's accuracy scored against the set's key."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from facegen.io import Layout, atomic_dir

log = logging.getLogger(__name__)

KEY_FILE = "key.csv"  # face,truth: never served
PAGE_FILE = "index.html"  # written last
LAYOUT = Layout("rating set", PAGE_FILE, ("face_*.png", KEY_FILE, PAGE_FILE))
ANSWERS = ("real", "edited")
RATING_COLUMNS = ("face", "answer", "seconds", "time", "set")  # set: which rating set (set_id) was answered
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
UPSCALE = 3  # faces are written this many times larger (nearest neighbour), for viewing
MAX_ANSWER_BYTES = 4096  # a POST /answer body larger than this is refused
Z95 = 1.959963984540054  # the standard normal quantile of a two-sided 95% interval


def read_faces(folder: Path, count: int | None = None, seed: int = 0) -> np.ndarray:
    """Up to ``count`` (all when None) of the PNG/JPG images in ``folder``, drawn at random with ``seed``, as
    N x H x W x 3 uint8; an error naming the folder when it has none or they differ in size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{folder}: no PNG or JPG images")
    if count is not None and count < len(files):
        files = [files[i] for i in sorted(np.random.default_rng(seed).choice(len(files), count, replace=False))]
    images = [_read_image(path) for path in files]
    for path, image in zip(files, images):
        if image.shape != images[0].shape:
            raise ValueError(
                f"{folder}: {path.name} is {_size(image)}, {files[0].name} {_size(images[0])}; "
                "a rating set's faces must all be one size"
            )
    return np.stack(images)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def make_rating_set(real: Path, edited: Path, out: Path, count: int | None = None, seed: int = 0) -> Path:
    """Write the rating set of up to ``count`` faces of each folder (see :func:`read_faces`) into ``out``."""
    rng = np.random.default_rng(seed)
    real_faces = read_faces(real, count, int(rng.integers(2**31)))
    edited_faces = read_faces(edited, count, int(rng.integers(2**31)))
    if real_faces.shape[1:] != edited_faces.shape[1:]:
        raise ValueError(
            f"{edited}: its faces are {_size(edited_faces[0])}, those of {real} {_size(real_faces[0])}; "
            "a rating set's faces must all be one size"
        )
    return write_rating_set(real_faces, edited_faces, out, seed)


def write_rating_set(real: np.ndarray, edited: np.ndarray, out: Path, seed: int = 0) -> Path:
    """Write ``real`` and ``edited`` (N x H x W x 3 uint8 each) into the folder ``out``, replaced atomically: the
    faces, shuffled with ``seed``, as ``face_000.png``, ... (enlarged x3), ``key.csv`` (face,truth) and
    ``index.html``, the page that asks a rater about each face in turn."""
    from PIL import Image

    for name, faces in (("real", real), ("edited", edited)):
        if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8 or not len(faces):
            raise ValueError(f"{name} faces: expected N x H x W x 3 uint8 with N > 0, got {faces.shape} {faces.dtype}")
    if real.shape[1:] != edited.shape[1:]:
        raise ValueError(f"real faces are {_size(real[0])}, edited ones {_size(edited[0])}: they must be one size")
    faces = np.concatenate([real, edited])
    truths = ["real"] * len(real) + ["edited"] * len(edited)
    order = np.random.default_rng(seed).permutation(len(faces))
    width = max(3, len(str(len(faces) - 1)))
    names = [f"face_{i:0{width}d}.png" for i in range(len(faces))]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out, LAYOUT) as tmp:
        for name, index in zip(names, order):  # in name order: no file time says which input a face came from
            big = faces[index].repeat(UPSCALE, axis=0).repeat(UPSCALE, axis=1)
            Image.fromarray(big).save(tmp / name, format="png")
        with open(tmp / KEY_FILE, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(("face", "truth"))
            writer.writerows((name, truths[index]) for name, index in zip(names, order))
        (tmp / PAGE_FILE).write_text(_page(names), encoding="utf-8")
    return out


def _page(names: list[str]) -> str:
    """The rating page: one face at a time, Real / Edited (keys R / E), each answer POSTed to /answer."""
    return PAGE.replace("FACES_JSON", json.dumps(names))


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Real or edited?</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #222; color: #eee; text-align: center; }
  main { padding: 1.5rem; }
  #face { height: min(65vh, 90vw); image-rendering: pixelated; background: #000; display: block; margin: 1rem auto; }
  button { font-size: 1.4rem; padding: 0.6rem 2.4rem; margin: 0 1rem; cursor: pointer; }
  #counter { font-size: 1.2rem; }
  #note { color: #f88; min-height: 1.5em; }
  .hidden { display: none !important; }
</style>
</head>
<body>
<main>
  <h1>Real or edited?</h1>
  <div id="asking">
    <div id="counter"></div>
    <img id="face" alt="a face">
    <button id="real" type="button">Real</button>
    <button id="edited" type="button">Edited</button>
    <p>Keys: R for real, E for edited.</p>
  </div>
  <p id="note"></p>
  <h2 id="done" class="hidden"></h2>
</main>
<script>
const faces = FACES_JSON;
const img = document.getElementById("face");
const counter = document.getElementById("counter");
const note = document.getElementById("note");
let current = 0;
let shownAt = performance.now();
let busy = false;

function show() {
  if (current >= faces.length) {
    document.getElementById("asking").classList.add("hidden");
    const done = document.getElementById("done");
    done.textContent = "Thank you \\u2014 " + faces.length + " answers saved";
    done.classList.remove("hidden");
    return;
  }
  counter.textContent = (current + 1) + " / " + faces.length;
  img.src = faces[current];
  if (current + 1 < faces.length) { new Image().src = faces[current + 1]; }
}

img.addEventListener("load", () => { shownAt = performance.now(); });

async function answer(choice) {
  if (busy || current >= faces.length) { return; }
  busy = true;
  const seconds = (performance.now() - shownAt) / 1000;
  try {
    const response = await fetch("/answer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ face: faces[current], answer: choice, seconds: seconds }),
    });
    if (!response.ok) { throw new Error(await response.text()); }
    note.textContent = "";
    current += 1;
    show();
  } catch (error) {
    note.textContent = "Not saved (" + error.message + "); please answer again.";
  } finally {
    busy = false;
  }
}

document.getElementById("real").addEventListener("click", () => answer("real"));
document.getElementById("edited").addEventListener("click", () => answer("edited"));
document.addEventListener("keydown", (event) => {
  if (event.key === "r" || event.key === "R") { answer("real"); }
  if (event.key === "e" || event.key === "E") { answer("edited"); }
});
show();
</script>
</body>
</html>
"""


def read_key(folder: Path) -> dict[str, str]:
    """The truth of each face of the rating set ``folder`` (face -> "real" | "edited")."""
    folder = Path(folder)
    if not (folder / PAGE_FILE).is_file() or not (folder / KEY_FILE).is_file():
        raise ValueError(f"{folder}: not a rating set (make one with `facegen rate make`)")
    with open(folder / KEY_FILE, newline="", encoding="utf-8") as f:
        return {row["face"]: row["truth"] for row in csv.DictReader(f)}


def set_id(folder: Path) -> str:
    """A rating set's identity: the digest of its key, so answers to another set (same face names) are told apart."""
    return hashlib.sha256((Path(folder) / KEY_FILE).read_bytes()).hexdigest()[:12]


class RatingServer(ThreadingHTTPServer):
    """Serves a rating set's page and faces, and appends each answer POSTed to /answer to ``ratings``."""

    def __init__(self, address: tuple[str, int], folder: Path, ratings: Path) -> None:
        self.folder = Path(folder)
        self.faces = set(read_key(self.folder))
        self.set_id = set_id(self.folder)
        self.ratings = Path(ratings)
        self.write_lock = threading.Lock()
        super().__init__(address, RatingHandler)

    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def append(self, face: str, answer: str, seconds: float) -> None:
        """Append one answer row (the header first when the file is new), flushed as the file closes."""
        with self.write_lock:
            new = not self.ratings.exists() or self.ratings.stat().st_size == 0
            with open(self.ratings, "a", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(RATING_COLUMNS)
                now = datetime.now(UTC).isoformat(timespec="seconds")
                writer.writerow((face, answer, round(seconds, 3), now, self.set_id))


class RatingHandler(BaseHTTPRequestHandler):
    """GET: the page and the set's faces only (anything else, key.csv included: 404); POST /answer: one answer."""

    server: RatingServer
    timeout = 30  # seconds a connection may stay silent (a client that sends less than its Content-Length)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", f"/{PAGE_FILE}"):
            self._send(HTTPStatus.OK, (self.server.folder / PAGE_FILE).read_bytes(), "text/html; charset=utf-8")
        elif path.startswith("/") and path[1:] in self.server.faces:
            self._send(HTTPStatus.OK, (self.server.folder / path[1:]).read_bytes(), "image/png")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/answer":
            self._send(HTTPStatus.NOT_FOUND, b"not found")
            return
        try:
            answer = self._read_answer()
        except ValueError as err:
            self._send(HTTPStatus.BAD_REQUEST, str(err).encode())
            return
        try:
            self.server.append(answer["face"], answer["answer"], float(answer["seconds"]))
        except OSError as err:
            log.error("could not save an answer to %s: %s", self.server.ratings, err)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not save the answer: {err.strerror}".encode())
            return
        self._send(HTTPStatus.OK, b'{"saved": true}', "application/json")

    def _read_answer(self) -> dict:
        """The posted answer; ValueError saying why it is refused (JSON only: a cross-site form cannot post it
        without a preflight, which this server does not answer)."""
        if self.headers.get_content_type() != "application/json":
            raise ValueError("expected Content-Type application/json")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or not 0 < int(length) <= MAX_ANSWER_BYTES:
            raise ValueError(f"an answer is 1 to {MAX_ANSWER_BYTES} bytes, with its Content-Length")
        try:
            answer = json.loads(self.rfile.read(int(length)))
        except ValueError:  # UnicodeDecodeError included
            raise ValueError("not JSON") from None
        if not isinstance(answer, dict) or answer.get("face") not in self.server.faces:
            raise ValueError("face is not one of this set's faces")
        if answer.get("answer") not in ANSWERS:
            raise ValueError("answer must be real or edited")
        seconds = answer.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf:
            raise ValueError("seconds must be a number of seconds")
        return answer

    def _send(self, status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def serve_rating(folder: Path, ratings: Path, host: str = "127.0.0.1", port: int = 0) -> RatingServer:
    """A ``ThreadingHTTPServer`` (not yet serving: call ``serve_forever``) for the rating set ``folder`` on
    ``host``:``port`` (0: a free port) that appends the answers to the CSV ``ratings`` (face,answer,seconds,time)."""
    ratings = Path(ratings)
    if ratings.exists() and (not ratings.is_file() or _header(ratings) != list(RATING_COLUMNS)):
        raise ValueError(f"{ratings}: not a ratings CSV ({','.join(RATING_COLUMNS)}); refusing to append to it")
    ratings.parent.mkdir(parents=True, exist_ok=True)
    return RatingServer((host, port), folder, ratings)


def _header(path: Path) -> list[str]:
    """The first row of the CSV file ``path`` (the ratings header when it is empty: appending writes one)."""
    if not path.stat().st_size:
        return list(RATING_COLUMNS)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error):
        return []


def score_ratings(folder: Path, ratings: Path) -> dict:
    """The rater's answers in ``ratings`` to the set ``folder`` (the last answer of a face counts; rows of other
    sets are left out and counted) scored against its key: ``answered``, ``faces``, ``accuracy`` with its 95%
    Wilson interval (``accuracy_low``, ``accuracy_high``), the shares ``real_called_real`` and
    ``edited_called_edited`` (None when no face of that truth was answered) and ``other_sets_rows``."""
    key, this_set = read_key(folder), set_id(folder)
    answers: dict[str, str] = {}
    others = 0
    with open(ratings, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"face", "answer"} <= set(reader.fieldnames):
            raise ValueError(f"{ratings}: not a ratings CSV (no face and answer columns)")
        for row in reader:
            if row.get("set", this_set) != this_set:
                others += 1
                continue
            if row["face"] not in key:
                raise ValueError(f"{ratings} line {reader.line_num}: unknown face {row['face']!r} (not in {folder})")
            if row["answer"] not in ANSWERS:
                raise ValueError(f"{ratings} line {reader.line_num}: answer {row['answer']!r} is not real or edited")
            answers[row["face"]] = row["answer"]
    if not answers:
        raise ValueError(f"{ratings}: no answers yet")
    right = sum(answers[face] == key[face] for face in answers)
    low, high = wilson_interval(right, len(answers))
    return {
        "answered": len(answers),
        "faces": len(key),
        "accuracy": right / len(answers),
        "accuracy_low": low,
        "accuracy_high": high,
        "real_called_real": _share_right(answers, key, "real"),
        "edited_called_edited": _share_right(answers, key, "edited"),
        "other_sets_rows": others,
    }


def _share_right(answers: dict[str, str], key: dict[str, str], truth: str) -> float | None:
    given = [answers[face] for face in answers if key[face] == truth]
    return sum(answer == truth for answer in given) / len(given) if given else None


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default)."""
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
