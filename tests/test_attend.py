"""`facegen attend` on real faces (../shared/faces64) with the dlib teacher: enrol a roster, calibrate on people not
on it, check in photos of one face and of two, write the log; another process reads the database meanwhile, and
another model's database, a broken photo, a locked database and a failed enrolment are handled as promised.

Each photo is a faces64 crop enlarged to 160 x 160 on a plain 400 x 300 wall, so MTCNN finds it as in a real
photo; the calibration faces are the raw 64 x 64 crops (``--tight``)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipelines.cli import app
from tests.support.faces import copy_people

FACEGEN = str(Path(sys.executable).parent / "facegen")
REPO = Path(__file__).resolve().parents[1]
PARAMS = str(REPO / "params.yaml")
DLIB = ["--params", PARAMS, "--set", "recognition.pretrained=dlib", "--set", "data.image_size=64"]
ROSTER, STRANGER = (0, 1, 2), 12  # faces64 people by sorted index; the stranger is neither enrolled nor calibrated


# `facegen attend ARGS` killed (SIGKILL) inside its write transaction, once its writes reached the database file
KILLED_ENROL = """
import os, signal, sys
from pipelines.cli import app
from recognition.attendance.database import AttendanceDatabase

replace_people = AttendanceDatabase.replace_people

def killed(self, photos, prototypes, when):
    replace_people(self, photos, prototypes, when)
    self.connection.execute("PRAGMA cache_size = 1")  # a tiny page cache: the writes spill into the file itself
    self.connection.executemany(
        "INSERT INTO checkins (time, session, photo, face, nearest, score) VALUES (?, 's', 'p', 1, 'n', 0)",
        [(str(i),) for i in range(20000)],
    )
    os.kill(os.getpid(), signal.SIGKILL)

AttendanceDatabase.replace_people = killed
app(sys.argv[1:])
"""


@dataclass(frozen=True)
class Enrolled:
    db: Path
    people: list[Path]  # faces64's people, sorted
    enrol_output: str
    calibrate_output: str


def _photo(faces: list[Path], out: Path) -> Path:
    """A 400 x 300 photo of a plain wall with the faces64 crops, enlarged to 160 x 160, side by side."""
    canvas = Image.new("RGB", (400, 300), (200, 205, 210))
    for k, face in enumerate(faces):
        canvas.paste(Image.open(face).convert("RGB").resize((160, 160), Image.Resampling.BICUBIC), (20 + 200 * k, 70))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, quality=95)
    return out


def _face(person: Path, k: int) -> Path:
    return sorted(person.iterdir())[k]


def _attend(*args: str) -> tuple[int, str, str, BaseException | None]:
    """`facegen attend ARGS` in this process: (exit code, stdout, stderr, the error that ended it)."""
    result = CliRunner().invoke(app, ["attend", *args])
    error = None if isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.stdout, result.stderr, error


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return list(connection.iterdump())


def _checkins(stdout: str) -> list[tuple[str, str, str, float]]:
    """(photo name, face, person, score) of each check-in line."""
    lines = [line.split("\t") for line in stdout.splitlines() if line.count("\t") == 3]
    return [(Path(photo).name, face, person, float(score)) for photo, face, person, score in lines]


@pytest.fixture(scope="module")
def enrolled(shared_faces64: Path, tmp_path_factory: pytest.TempPathFactory) -> Enrolled:
    """A database with 3 people x 3 photos enrolled (plus a photo with no face and a broken one, both skipped) and
    the threshold calibrated on 6 other people."""
    root = tmp_path_factory.mktemp("attend")
    people = sorted(shared_faces64.iterdir())
    for i in ROSTER:
        for k in range(3):
            _photo([_face(people[i], k)], root / "roster" / people[i].name / f"{k}.jpg")
    _photo([], root / "roster" / people[0].name / "empty_wall.jpg")
    (root / "roster" / people[1].name / "broken.jpg").write_bytes(_face(people[1], 5).read_bytes()[:300])
    strangers = copy_people(shared_faces64, root / "strangers", n_people=9, per_person=1)
    for i in ROSTER:
        shutil.rmtree(strangers / people[i].name)
    db = root / "attendance.db"
    code, enrol_output, enrol_errors, error = _attend("enrol", str(root / "roster"), "--db", str(db), *DLIB)
    assert code == 0, (enrol_errors, error)
    code, calibrate_output, _, error = _attend(
        "calibrate", str(strangers), "--db", str(db), "--far", "0.01", "--tight", *DLIB
    )
    assert code == 0, error
    return Enrolled(db, people, enrol_output + enrol_errors, calibrate_output)


@pytest.fixture
def db(enrolled: Enrolled, tmp_path: Path) -> Path:
    """A copy of the enrolled database for one test to change."""
    return Path(shutil.copy(enrolled.db, tmp_path / "attendance.db"))


def test_enrol_stores_prototypes_embeddings_and_the_model(enrolled: Enrolled) -> None:
    from recognition.models.teacher import fingerprint

    assert "3 people enrolled from 9 of 11 photos (2 skipped: 1 unreadable, 1 without a usable face)" in (
        enrolled.enrol_output
    )
    skipped = [line for line in enrolled.enrol_output.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 and "empty_wall.jpg: no face found" in "\n".join(skipped)
    assert "broken.jpg: cannot decode image" in "\n".join(skipped)
    assert "0 of 6 faces of people not on the roster would be named" in enrolled.calibrate_output
    with sqlite3.connect(enrolled.db) as connection:
        meta = dict(connection.execute("SELECT key, value FROM meta"))
        people = connection.execute("SELECT name, prototype, photos FROM people ORDER BY name").fetchall()
        photos = connection.execute("SELECT person, embedding FROM enrolment").fetchall()
        calibration_faces = connection.execute("SELECT COUNT(*) FROM calibration").fetchone()[0]
    assert meta["model"] == fingerprint() and meta["face_size"] == "64" and float(meta["far"]) == 0.01
    assert 0 < float(meta["threshold"]) < 1 and calibration_faces == 6
    assert [(name, count) for name, _, count in people] == [(enrolled.people[i].name, 3) for i in ROSTER]
    for name, prototype, _ in people:
        embeddings = np.stack([np.frombuffer(e, "<f4") for person, e in photos if person == name])
        assert embeddings.shape == (3, 128)
        mean = embeddings.mean(0)
        np.testing.assert_allclose(np.frombuffer(prototype, "<f4"), mean / np.linalg.norm(mean), atol=1e-6)


def test_checkin_names_an_enrolled_person_and_calls_a_stranger_unknown(enrolled: Enrolled, db: Path) -> None:
    people = enrolled.people
    photos = db.parent / "class"
    _photo([_face(people[0], 3)], photos / "enrolled.jpg")  # a photo of person 0 that was not enrolled
    _photo([_face(people[STRANGER], 0)], photos / "stranger.jpg")
    code, stdout, stderr, error = _attend("checkin", str(photos), "--db", str(db), "--session", "monday", *DLIB)
    assert code == 0, (stderr, error)
    threshold = float(dict(sqlite3.connect(db).execute("SELECT key, value FROM meta"))["threshold"])
    (enrolled_photo, face, person, score), (stranger_photo, _, stranger, stranger_score) = _checkins(stdout)
    assert (enrolled_photo, face, person) == ("enrolled.jpg", "face 1", people[0].name) and score > threshold
    assert (stranger_photo, stranger) == ("stranger.jpg", "unknown") and stranger_score <= threshold
    assert "2 faces checked in to session 'monday' from 2 photos" in stdout
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT session, photo, face, person, nearest, score FROM checkins").fetchall()
    assert [(s, Path(p).name, f, n) for s, p, f, n, _, _ in rows] == [
        ("monday", "enrolled.jpg", 1, people[0].name),
        ("monday", "stranger.jpg", 1, None),  # unknown: stored without a name, with the nearest person
    ]
    assert rows[0][5] == pytest.approx(score, abs=1e-4) and rows[1][4] in {people[i].name for i in ROSTER}


def test_every_face_of_a_group_photo_is_named(enrolled: Enrolled, db: Path) -> None:
    people = enrolled.people
    photo = _photo([_face(people[1], 4), _face(people[2], 4)], db.parent / "pair.jpg")
    code, stdout, stderr, error = _attend("checkin", str(photo), "--db", str(db), "--session", "s1", *DLIB)
    assert code == 0, (stderr, error)
    named = _checkins(stdout)
    assert {face for _, face, _, _ in named} == {"face 1", "face 2"}
    assert {person for _, _, person, _ in named} == {people[1].name, people[2].name}


def test_a_second_process_reads_the_database_while_this_one_writes(db: Path) -> None:
    read = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=5); "
        "print(c.execute('SELECT COUNT(*) FROM people').fetchone()[0], "
        "c.execute('SELECT COUNT(*) FROM checkins').fetchone()[0])"
    )
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a write under way in this process, not yet committed
    writer.execute(
        "INSERT INTO checkins (time, session, photo, face, person, nearest, score) "
        "VALUES ('t', 's', 'p', 1, NULL, 'x', 0.5)"
    )
    during = subprocess.run([sys.executable, "-c", read, str(db)], capture_output=True, text=True, timeout=60)
    writer.execute("COMMIT")
    after = subprocess.run([sys.executable, "-c", read, str(db)], capture_output=True, text=True, timeout=60)
    writer.close()
    assert during.returncode == 0, during.stderr
    assert (during.stdout.split(), after.stdout.split()) == (["3", "0"], ["3", "1"])  # before the commit, then after


def test_log_writes_the_attendance_and_never_overwrites_a_users_file(enrolled: Enrolled, db: Path) -> None:
    people = enrolled.people
    _photo([_face(people[0], 3), _face(people[STRANGER], 0)], db.parent / "group.jpg")
    assert _attend("checkin", str(db.parent / "group.jpg"), "--db", str(db), "--session", "s1", *DLIB)[0] == 0
    out = db.parent / "s1.csv"
    code, _, _, error = _attend("log", "--db", str(db), "--session", "s1", "-o", str(out))
    assert code == 0, error
    lines = out.read_text().splitlines()
    assert lines[0] == "session,status,person,time,score,photo,face"
    statuses = [(line.split(",")[1], line.split(",")[2]) for line in lines[1:]]
    assert statuses == [
        ("present", people[0].name),
        ("absent", people[1].name),
        ("absent", people[2].name),
        ("unknown", ""),
    ]
    assert _attend("log", "--db", str(db), "-o", str(out))[0] == 0  # a previous log is replaced
    mine = db.parent / "notes.csv"
    mine.write_text("my own notes\n")
    code, _, _, error = _attend("log", "--db", str(db), "-o", str(mine))
    assert code == 1 and "is not a facegen attendance log" in str(error) and "not overwritten" in str(error)
    assert mine.read_text() == "my own notes\n" and sorted(p.name for p in db.parent.glob(".*")) == []
    assert _attend("log", "--db", str(db), "--session", "tuesday")[3] is not None  # no such session: an error


@pytest.mark.parametrize("target", ["dangling", "a log"])
def test_write_log_refuses_a_symbolic_link_at_the_output(tmp_path: Path, target: str) -> None:
    from recognition.attendance.database import AttendanceError
    from recognition.attendance.log import HEADER, write_log

    pointed = tmp_path / "elsewhere.csv"
    if target == "a log":
        pointed.write_text(HEADER + "\n")
    out = tmp_path / "s1.csv"
    out.symlink_to(pointed)
    with pytest.raises(AttendanceError, match="is a symbolic link") as err:
        write_log([("s1", "absent", "ann", "", "", "", "")], out)
    assert str(out) in str(err.value) and "\n" not in str(err.value)
    assert out.is_symlink() and os.readlink(out) == str(pointed)
    assert (pointed.read_text() == HEADER + "\n") if target == "a log" else not pointed.exists()


def test_an_unreadable_photo_is_one_line_and_the_others_are_checked_in(enrolled: Enrolled, db: Path) -> None:
    photos = db.parent / "class"
    _photo([_face(enrolled.people[2], 3)], photos / "a.jpg")
    (photos / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "c.txt").write_text("not a photo")
    code, stdout, stderr, error = _attend("checkin", str(photos), "--db", str(db), "--session", "s1", *DLIB)
    assert code == 0, (stderr, error)
    (broken,) = [line for line in stderr.splitlines() if "b.jpg" in line]
    assert broken.startswith(f"skipped {photos / 'b.jpg'}: cannot decode image")
    assert len([line for line in stderr.splitlines() if line.startswith("skipped ")]) == 2  # b.jpg and c.txt
    assert [(p, person) for p, _, person, _ in _checkins(stdout)] == [("a.jpg", enrolled.people[2].name)]
    assert "(2 skipped: 2 unreadable, 0 without a usable face)" in stdout
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM checkins").fetchone()[0] == 1


def test_a_database_of_another_model_is_refused_in_one_line(
    enrolled: Enrolled, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE meta SET value = 'facenet:0123abcd|80' WHERE key = 'model'")
    before = _dump(db)
    photo = _photo([_face(enrolled.people[0], 3)], db.parent / "a.jpg")
    result = subprocess.run(
        [FACEGEN, "attend", "checkin", str(photo), "--db", str(db), *DLIB], capture_output=True, text=True
    )
    from recognition.models.teacher import fingerprint

    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "facenet:0123abcd|80" in result.stderr and fingerprint() in result.stderr
    assert "Traceback" not in result.stderr and _dump(db) == before
    missing = _attend("enrol", str(db.parent), "--db", str(db), *DLIB[:2], "--set", "recognition.pretrained=nope.pt")
    assert "no model file nope.pt" in str(missing[3]) and "recognition.pretrained=dlib" in str(missing[3])
    (db.parent / "mine.yaml").write_text("data:\n  image_size: 64\n")  # recognition.pretrained: the default
    monkeypatch.chdir(db.parent)  # where the distilled facenet was never built
    default = str(_attend("enrol", str(db.parent), "--db", str(db), "--params", "mine.yaml")[3])
    assert "no model file studies/faces64/models/distilled.pt" in default and "distill_backbone" in default
    assert _dump(db) == before


def test_a_failed_enrolment_leaves_the_database_as_it_was(
    enrolled: Enrolled, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recognition.attendance.database import AttendanceDatabase
    from recognition.models.teacher import DlibTeacher

    people = enrolled.people
    newcomers = db.parent / "newcomers"
    for i in (13, 14):
        _photo([_face(people[i], 0)], newcomers / people[i].name / "0.jpg")
    before = _dump(db)

    def embedder_fails(self: DlibTeacher, images: np.ndarray) -> np.ndarray:
        raise RuntimeError("embedder killed midway")

    with monkeypatch.context() as patch:
        patch.setattr(DlibTeacher, "embed", embedder_fails)
        assert "killed midway" in str(_attend("enrol", str(newcomers), "--db", str(db), *DLIB)[3])
    assert _dump(db) == before

    replace_people = AttendanceDatabase.replace_people

    def fails_after_the_first_person(self: AttendanceDatabase, photos: dict, prototypes: dict, when: str) -> None:
        first = next(iter(photos))
        replace_people(self, {first: photos[first]}, prototypes, when)  # written inside the transaction
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(AttendanceDatabase, "replace_people", fails_after_the_first_person)
        assert "disk full" in str(_attend("enrol", str(newcomers), "--db", str(db), *DLIB)[3])
    assert _dump(db) == before

    written = db.read_bytes()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_ENROL, "attend", "enrol", str(newcomers), "--db", str(db), *DLIB],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    journal = db.with_name(db.name + "-journal")
    assert journal.is_file() and db.read_bytes() != written  # the kill left a half-written file and its journal
    assert _dump(db) == before and not journal.exists()  # the next open rolled the half-written enrolment back

    code, stdout, _, error = _attend("enrol", str(newcomers), "--db", str(db), *DLIB)  # now it works
    assert code == 0, error
    assert "2 people enrolled from 2 of 2 photos" in stdout and "threshold set anew" in stdout
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM people").fetchone()[0] == 5


def test_a_locked_database_is_a_clear_error_and_calibration_refuses_roster_people(
    enrolled: Enrolled, db: Path, shared_faces64: Path
) -> None:
    photo = _photo([_face(enrolled.people[0], 3)], db.parent / "a.jpg")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing, and takes its time
    code, _, _, error = _attend("checkin", str(photo), "--db", str(db), "--wait", "0.2", *DLIB)
    other.execute("ROLLBACK")
    other.close()
    assert code == 1 and "locked by another process for more than 0.2 s" in str(error)
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM checkins").fetchone()[0] == 0
    with_roster = copy_people(shared_faces64, db.parent / "calibration", n_people=4, per_person=1)
    code, _, _, error = _attend("calibrate", str(with_roster), "--db", str(db), "--tight", *DLIB)
    assert "is on the roster; calibration needs photos of people NOT on it" in str(error)
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM meta WHERE key IN ('threshold', 'far')")
    assert "no threshold yet" in str(_attend("checkin", str(photo), "--db", str(db), *DLIB)[3])
