"""The human rating session: a rating set that gives nothing away, a server that serves only the page and the
faces and records valid answers, the rater's score, and the page itself driven by headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import binomtest
from typer.testing import CliRunner

from facegen.io import UnsafeOutputError
from facegen.report.rating import (
    RatingServer,
    read_key,
    score_ratings,
    serve_rating,
    set_id,
    write_rating_set,
)
from facegen.report.screenshot import find_browser
from pipelines.cli import app


def _faces(n: int, seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture
def rating_set(tmp_path: Path) -> Path:
    return write_rating_set(_faces(4, 1), _faces(4, 2), tmp_path / "set", seed=3)


@pytest.fixture
def server(rating_set: Path, tmp_path: Path) -> Iterator[RatingServer]:
    with serve_rating(rating_set, tmp_path / "ratings.csv") as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        try:
            yield running
        finally:
            running.shutdown()
            thread.join(5)


def _get(server: RatingServer, path: str) -> int:
    try:
        with urllib.request.urlopen(server.url().rstrip("/") + path, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _post(server: RatingServer, body: object, content_type: str = "application/json") -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        server.url() + "answer", data=data, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_rating_set_hides_which_face_is_which(tmp_path: Path) -> None:
    real, edited = _faces(4, 1), _faces(4, 2)
    folder = write_rating_set(real, edited, tmp_path / "set", seed=3)
    key = read_key(folder)
    assert sorted(p.name for p in folder.glob("*.png")) == [f"face_{i:03d}.png" for i in range(8)] == sorted(key)
    assert sorted(key.values()) == ["edited"] * 4 + ["real"] * 4
    assert [row["face"] for row in _rows(folder / "key.csv")] == sorted(key)  # face,truth columns
    assert list(key.values()) != ["real"] * 4 + ["edited"] * 4  # shuffled
    for name, truth in key.items():
        shown = np.asarray(Image.open(folder / name))
        assert shown.shape == (24, 24, 3)  # enlarged x3, nearest neighbour: every pixel a 3 x 3 block
        assert np.array_equal(shown, shown[::3, ::3].repeat(3, axis=0).repeat(3, axis=1))
        source = real if truth == "real" else edited
        assert any(np.array_equal(shown[::3, ::3], face) for face in source)
    page = (folder / "index.html").read_text()
    assert "http:" not in page and "https:" not in page and 'src="//' not in page and "key.csv" not in page
    # The page names the faces only: it is the same for any 4 real and 4 edited faces, so it cannot tell the rater.
    other = write_rating_set(_faces(4, 5), _faces(4, 6), tmp_path / "other", seed=3)
    assert (other / "index.html").read_text() == page
    # Written again over itself (facegen's folder), but never over a folder of the user's.
    write_rating_set(real, edited, folder, seed=4)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeOutputError, match="not a folder of rating set"):
        write_rating_set(real, edited, tmp_path / "mine")


def test_the_server_serves_the_page_and_faces_only_and_records_valid_answers(
    server: RatingServer, rating_set: Path, tmp_path: Path
) -> None:
    assert _get(server, "/") == _get(server, "/index.html") == _get(server, "/face_000.png") == 200
    for path in ("/key.csv", "/../key.csv", "/%2e%2e/key.csv", "/face_999.png", "/.facegen.json", "/etc/passwd"):
        assert _get(server, path) == 404, path
    assert _post(server, {"face": "face_000.png", "answer": "maybe", "seconds": 1})[0] == 400
    assert _post(server, {"face": "key.csv", "answer": "real", "seconds": 1}) == (
        400,
        "face is not one of this set's faces",
    )
    assert _post(server, {"face": "face_000.png", "answer": "real", "seconds": -1})[0] == 400
    assert _post(server, b"{not json")[0] == 400
    assert _post(server, {"face": "face_000.png", "answer": "real", "seconds": 1}, "text/plain")[0] == 400
    assert not (tmp_path / "ratings.csv").exists()
    assert _post(server, {"face": "face_001.png", "answer": "real", "seconds": 1.23456})[0] == 200
    assert _post(server, {"face": "face_002.png", "answer": "edited", "seconds": 2})[0] == 200
    rows = _rows(tmp_path / "ratings.csv")
    assert [(r["face"], r["answer"], r["seconds"]) for r in rows] == [
        ("face_001.png", "real", "1.235"),
        ("face_002.png", "edited", "2.0"),
    ]
    assert all(r["time"] for r in rows)


def test_serving_refuses_to_append_to_a_file_that_is_not_a_ratings_csv(rating_set: Path, tmp_path: Path) -> None:
    (tmp_path / "thesis.csv").write_text("chapter,pages\n1,20\n")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)))
    for path in (tmp_path / "thesis.csv", tmp_path / "photo.jpg", tmp_path, rating_set / "key.csv"):
        with pytest.raises(ValueError, match="not a ratings CSV"):
            serve_rating(rating_set, path)
    (tmp_path / "empty.csv").touch()
    serve_rating(rating_set, tmp_path / "empty.csv").server_close()


def _write_ratings(path: Path, rows: list[tuple[str, str]], answered_set: str | None = None) -> Path:
    """A ratings CSV as the server writes it, every row of ``answered_set`` (default: a header without the set
    column, as a hand-made file may have)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("face", "answer", "seconds", "time") + (("set",) if answered_set else ()))
        stamp = ("2026-01-01T00:00:00+00:00",) + ((answered_set,) if answered_set else ())
        writer.writerows((face, answer, 1.0, *stamp) for face, answer in rows)
    return path


def test_the_score_counts_the_last_answer_of_each_face(rating_set: Path, tmp_path: Path) -> None:
    key = read_key(rating_set)
    real = [face for face, truth in key.items() if truth == "real"]
    edited = [face for face, truth in key.items() if truth == "edited"]
    rows = [(real[0], "edited"), (real[0], "real"), (real[1], "real"), (real[2], "edited")]  # real: 2 of 3 right
    rows += [(edited[0], "edited"), (edited[1], "real"), (edited[1], "real")]  # edited: 1 of 2 right
    scores = score_ratings(rating_set, _write_ratings(tmp_path / "ratings.csv", rows))
    assert scores["answered"] == 5 and scores["faces"] == 8
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["real_called_real"] == pytest.approx(2 / 3)
    assert scores["edited_called_edited"] == pytest.approx(1 / 2)
    wilson = binomtest(3, 5).proportion_ci(method="wilson")
    assert (scores["accuracy_low"], scores["accuracy_high"]) == pytest.approx((wilson.low, wilson.high))
    assert scores["accuracy_low"] < scores["accuracy"] < scores["accuracy_high"]


def test_answers_to_another_set_with_the_same_face_names_are_left_out(rating_set: Path, tmp_path: Path) -> None:
    other = write_rating_set(_faces(4, 5), _faces(4, 6), tmp_path / "other", seed=4)
    assert set_id(other) != set_id(rating_set) and set(read_key(other)) == set(read_key(rating_set))
    face = next(iter(read_key(rating_set)))
    ratings = _write_ratings(tmp_path / "ratings.csv", [(face, "real")], answered_set=set_id(other))
    with pytest.raises(ValueError, match="no answers yet"):
        score_ratings(rating_set, ratings)
    assert score_ratings(other, ratings)["other_sets_rows"] == 0


def test_a_ratings_csv_with_an_unknown_face_or_answer_names_its_line(rating_set: Path, tmp_path: Path) -> None:
    unknown = _write_ratings(tmp_path / "a.csv", [("face_000.png", "real"), ("face_042.png", "real")])
    with pytest.raises(ValueError, match=r"a.csv line 3: unknown face 'face_042.png'"):
        score_ratings(rating_set, unknown)
    bad = _write_ratings(tmp_path / "b.csv", [("face_000.png", "fake")])
    with pytest.raises(ValueError, match=r"b.csv line 2: answer 'fake' is not real or edited"):
        score_ratings(rating_set, bad)


def test_the_cli_makes_a_set_from_two_folders_and_scores_it(tmp_path: Path) -> None:
    for folder, seed in (("real", 1), ("edited", 2)):
        (tmp_path / folder).mkdir()
        for i, face in enumerate(_faces(5, seed)):
            Image.fromarray(face).save(tmp_path / folder / f"{i}.png")
    made = CliRunner().invoke(
        app,
        ["rate", "make", "--real", str(tmp_path / "real"), "--edited", str(tmp_path / "edited")]
        + ["--out", str(tmp_path / "set"), "--count", "3", "--seed", "7"],
    )
    assert made.exit_code == 0, made.output
    assert "6 faces (3 real, 3 edited) written to" in made.output
    ratings = _write_ratings(tmp_path / "ratings.csv", [(face, "real") for face in read_key(tmp_path / "set")])
    scored = CliRunner().invoke(app, ["rate", "score", str(tmp_path / "set"), "--ratings", str(ratings)])
    assert scored.exit_code == 0, scored.output
    assert "6 of 6 faces answered; accuracy 0.500" in scored.output
    assert "real called real 1.000, edited called edited 0.000" in scored.output
    Image.fromarray(_faces(1, 3, size=16)[0]).save(tmp_path / "edited" / "big.png")
    with pytest.raises(ValueError, match=r"edited: big.png is 16x16, 0.png 8x8"):
        CliRunner().invoke(
            app,
            ["rate", "make", "--real", str(tmp_path / "real"), "--edited", str(tmp_path / "edited")]
            + ["--out", str(tmp_path / "set2")],
            catch_exceptions=False,
        )


def _wait(what: str, check: Callable[[], object], timeout: float = 5) -> object:
    """Poll ``check`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout} s for {what}")


class _DevTools:
    """The least of a Chrome DevTools Protocol client: send a command on a page's websocket, wait for its reply."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.socket = connect(url, max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=10))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_rater_in_chromium_answers_every_face(server: RatingServer, rating_set: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    chromium = subprocess.Popen(
        [find_browser(), "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}"]
        + ["--no-sandbox", "--disable-gpu", "--no-first-run", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: its helpers end with it
    )
    try:
        active = profile / "DevToolsActivePort"
        port = _wait("DevToolsActivePort", lambda: active.is_file() and active.read_text().split("\n")[0], 20)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        devtools = _DevTools(page["webSocketDebuggerUrl"])
        devtools.call("Page.navigate", url=server.url())
        faces = len(read_key(rating_set))
        given = []
        for k in range(faces):
            counter = f"{k + 1} / {faces}"
            _wait(counter, lambda c=counter: devtools.evaluate("document.getElementById('counter')?.textContent") == c)
            given.append(("real", "edited")[k % 2])
            devtools.evaluate(f"document.querySelector('#{given[-1]}').click()")
        done = f"Thank you \u2014 {faces} answers saved"
        _wait(done, lambda: devtools.evaluate("document.getElementById('done').textContent") == done)
        devtools.socket.close()
    finally:
        os.killpg(chromium.pid, signal.SIGTERM)
        try:
            chromium.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(chromium.pid, signal.SIGKILL)
            chromium.wait(10)
    rows = _rows(tmp_path / "ratings.csv")
    shown = [row["face"] for row in rows]
    assert shown == sorted(read_key(rating_set))  # every face once, in the page's order
    assert [row["answer"] for row in rows] == given
    assert all(float(row["seconds"]) >= 0 for row in rows)
    key = read_key(rating_set)
    right = sum(key[face] == answer for face, answer in zip(shown, given))
    assert score_ratings(rating_set, tmp_path / "ratings.csv")["accuracy"] == pytest.approx(right / faces)
