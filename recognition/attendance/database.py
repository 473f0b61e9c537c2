"""The attendance database: one SQLite file with the roster (each person's prototype and per-photo embeddings),
the calibration faces and threshold, and every check-in.

Every write is one transaction (``BEGIN IMMEDIATE`` inside ``with connection:``, which commits it or rolls it
back), so another process reads the state before a write or the state after it, never half of one, and a write
that is killed leaves the database as it was (SQLite's rollback journal). Writers wait for each other up to a
busy timeout, then stop with an error that says so. The file records the recognizer's fingerprint and the face
size: one model's prototypes mean nothing to another, so the database is refused to any other model.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

FORMAT = "facegen attendance 1"
BUSY_TIMEOUT_S = 30.0  # how long a command waits for another process's write before giving up
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS people (name TEXT PRIMARY KEY, prototype BLOB NOT NULL, photos INTEGER NOT NULL, "
    "enrolled TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS enrolment (person TEXT NOT NULL, photo TEXT NOT NULL, embedding BLOB NOT NULL, "
    "PRIMARY KEY (person, photo))",
    "CREATE TABLE IF NOT EXISTS calibration (photo TEXT NOT NULL, face INTEGER NOT NULL, embedding BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkins (id INTEGER PRIMARY KEY, time TEXT NOT NULL, session TEXT NOT NULL, "
    "photo TEXT NOT NULL, face INTEGER NOT NULL, person TEXT, nearest TEXT NOT NULL, score REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS checkins_by_session ON checkins (session, time)",
)


class AttendanceError(RuntimeError):
    """The database or the photos cannot be used as asked; the message names the file and what to do."""


@dataclass(frozen=True)
class Roster:
    names: np.ndarray  # the enrolled people, sorted
    prototypes: np.ndarray  # P x D, row i: the L2-normalised mean embedding of names[i]


@dataclass(frozen=True)
class Calibration:
    threshold: float  # a face is named when its best cosine is above this
    far: float  # the share of calibration faces (people not on the roster) it accepts at most
    faces: int


@dataclass(frozen=True)
class CheckinRow:
    time: str  # ISO 8601, local time with its UTC offset
    session: str
    photo: str
    face: int  # 1: the photo's largest face
    person: str | None  # None: unknown (the best cosine is not above the threshold)
    nearest: str  # the most similar roster person, named or not
    score: float  # cosine similarity to that person's prototype


class AttendanceDatabase:
    """An open attendance database. ``create``: make the file when it is missing (its tables come with the first
    enrolment); ``readonly``: never write."""

    def __init__(
        self, path: Path, *, create: bool = False, readonly: bool = False, timeout: float = BUSY_TIMEOUT_S
    ) -> None:
        self.path, self.timeout = Path(path), timeout
        if not self.path.is_file() and not (create and not self.path.exists()):
            raise AttendanceError(
                f"{self.path}: no such attendance database; make one with `facegen attend enrol ROSTER_DIR "
                f"--db {self.path}`"
            )
        # a reader opens a file it may write as read-write but query-only: only such a connection rolls back what
        # a killed writer left in the journal (a read-only one cannot read the file until a writer has done so)
        query_only = readonly and os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        mode = "ro" if readonly and not query_only else "rwc" if create else "rw"
        try:
            self.connection = sqlite3.connect(
                f"file:{quote(str(self.path.resolve()))}?mode={mode}", uri=True, timeout=timeout, isolation_level=None
            )
            if query_only:
                self.connection.execute("PRAGMA query_only = ON")
        except sqlite3.Error as err:
            raise AttendanceError(f"{self.path}: cannot open the database ({err})") from None
        try:
            with self._errors():
                self._check_format(create)
        except AttendanceError:
            self.close()
            raise

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> AttendanceDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction: everything written inside it is committed together, or nothing is."""
        with self._errors():
            try:
                with self.connection:  # commits on success, rolls back on an error
                    self.connection.execute("BEGIN IMMEDIATE")  # the write lock now, so reads inside are current
                    yield
            finally:
                if self.connection.in_transaction:  # the COMMIT itself failed (e.g. readers held on too long)
                    self.connection.rollback()

    @contextmanager
    def read(self) -> Iterator[None]:
        """One consistent snapshot for several reads (another process's write lands before or after it)."""
        with self._errors(), self.connection:
            self.connection.execute("BEGIN")
            yield

    def initialise(self, model: str, face_size: int) -> None:
        """Create the tables of a new database for `model` (inside a write); an existing one must match."""
        for statement in SCHEMA:
            self.connection.execute(statement)
        defaults = {"format": FORMAT, "model": model, "face_size": str(face_size)}
        self.connection.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", defaults.items())
        self.check_model(model, face_size)

    def check_model(self, model: str, face_size: int) -> None:
        """Refuse a recognizer or face size other than the database was made with (a new database takes any)."""
        stored, size = self._meta("model"), self._meta("face_size")
        if stored is not None and stored != model:
            raise AttendanceError(
                f"{self.path} was made with the model {stored}, not with this recognizer ({model}): use the "
                "recognition.pretrained it was made with, or enrol into a new database"
            )
        if size is not None and int(size) != face_size:
            raise AttendanceError(
                f"{self.path} holds faces aligned at {size} px, not {face_size} px: use data.image_size={size}, "
                "or enrol into a new database"
            )

    def roster(self) -> Roster:
        rows = self._select("SELECT name, prototype FROM people ORDER BY name")
        names = np.array([name for name, _ in rows], dtype=str)
        return Roster(names, np.stack([_array(blob) for _, blob in rows]) if rows else np.zeros((0, 0)))

    def replace_people(
        self, photos: dict[str, list[tuple[str, np.ndarray]]], prototypes: dict[str, np.ndarray], enrolled: str
    ) -> None:
        """Enrol each person anew (inside a write): their (photo, embedding) pairs replace any earlier ones."""
        for person, pairs in photos.items():
            self.connection.execute("DELETE FROM enrolment WHERE person = ?", (person,))
            self.connection.execute(
                "INSERT OR REPLACE INTO people VALUES (?, ?, ?, ?)",
                (person, _blob(prototypes[person]), len(pairs), enrolled),
            )
            self.connection.executemany(
                "INSERT INTO enrolment VALUES (?, ?, ?)", [(person, photo, _blob(e)) for photo, e in pairs]
            )

    def calibration(self) -> Calibration | None:
        threshold, far = self._meta("threshold"), self._meta("far")
        if threshold is None or far is None:
            return None
        faces = self._select("SELECT COUNT(*) FROM calibration")[0][0]
        return Calibration(float(threshold), float(far), int(faces))

    def calibration_embeddings(self) -> np.ndarray:
        rows = self._select("SELECT embedding FROM calibration ORDER BY rowid")
        return np.stack([_array(blob) for (blob,) in rows]) if rows else np.zeros((0, 0))

    def set_calibration(
        self, faces: Iterable[tuple[str, int, np.ndarray]] | None, threshold: float, far: float
    ) -> None:
        """Store the threshold (inside a write), and the calibration faces when given (they replace the earlier)."""
        if faces is not None:
            self.connection.execute("DELETE FROM calibration")
            self.connection.executemany(
                "INSERT INTO calibration VALUES (?, ?, ?)", [(photo, face, _blob(e)) for photo, face, e in faces]
            )
        self.connection.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [("threshold", repr(threshold)), ("far", repr(far))]
        )

    def add_checkins(self, rows: Iterable[CheckinRow]) -> None:
        self.connection.executemany(
            "INSERT INTO checkins (time, session, photo, face, person, nearest, score) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r.time, r.session, r.photo, r.face, r.person, r.nearest, r.score) for r in rows],
        )

    def checkins(self, session: str | None = None) -> list[CheckinRow]:
        """The check-ins of `session` (None: of every session), in the order they were made."""
        query = "SELECT time, session, photo, face, person, nearest, score FROM checkins"
        rows = (
            self._select(f"{query} WHERE session = ? ORDER BY id", (session,))
            if session
            else self._select(f"{query} ORDER BY id")
        )
        return [CheckinRow(*row) for row in rows]

    def _check_format(self, create: bool) -> None:
        tables = {name for (name,) in self._select("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            if create:
                return  # a new database: the first enrolment writes its tables
            raise AttendanceError(
                f"{self.path}: holds no roster yet; enrol one with `facegen attend enrol ROSTER_DIR --db {self.path}`"
            )
        found = self._meta("format") if "meta" in tables else None
        if found != FORMAT:
            raise AttendanceError(
                f"{self.path}: not a facegen attendance database"
                + (f" (format {found!r}, this facegen reads {FORMAT!r})" if found else "")
                + "; give another --db"
            )

    def _meta(self, key: str) -> str | None:
        if not self._select("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"):
            return None
        rows = self._select("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def _select(self, query: str, args: tuple = ()) -> list[tuple]:
        return self.connection.execute(query, args).fetchall()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as one-line messages that name the database."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise AttendanceError(
                    f"{self.path}: locked by another process for more than {self.timeout:g} s (another `facegen "
                    "attend` writing to it?); nothing was changed: run the command again when that one has finished"
                ) from None
            raise AttendanceError(f"{self.path}: {err}") from None
        except sqlite3.DatabaseError as err:
            raise AttendanceError(f"{self.path}: not a usable SQLite database ({err})") from None


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, "<f4").tobytes()


def _array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, "<f4").astype(np.float64)
