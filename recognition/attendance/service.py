"""The steps of taking attendance on one database with one recognizer: enrol a roster, calibrate the open-set
threshold on people not on it, check the faces of new photos in.

A person's prototype is the L2-normalised mean of their normalised enrolment embeddings; a face is named as the
nearest prototype by cosine (``NearestClassMean``), or unknown when that cosine is not above the threshold, set
by ``threshold_at_far`` so that at most ``far`` of the calibration faces would be named. Every photo is read,
detected and embedded before the database is touched, and the results are written in one transaction: a photo
that fails is reported and skipped, a run that fails or is killed writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegen.data.images import display_path
from facegen.data.prepare import NoUsableFace
from recognition.attendance.database import (
    BUSY_TIMEOUT_S,
    AttendanceDatabase,
    AttendanceError,
    CheckinRow,
    Roster,
)
from recognition.attendance.faces import FaceFinder, PhotoFaces, photo_files
from recognition.classifier import NearestClassMean, threshold_at_far
from recognition.models.embeddings import Embedder

UNKNOWN = "unknown"  # what a face not on the roster is called (so no roster folder may have this name)
NO_EMBEDDING = "the recognizer cannot place landmarks on the aligned face"


UNREADABLE, NO_FACE, NOT_USED = "unreadable", "without a usable face", "not used"  # the kinds of skipped files


@dataclass(frozen=True)
class Skipped:
    photo: str
    reason: str
    kind: str = NO_FACE  # UNREADABLE: no readable photo; NOT_USED: a photo in the wrong place


@dataclass(frozen=True)
class Face:
    photo: str
    face: int  # 1: the photo's largest face
    embedding: np.ndarray


@dataclass
class EnrolReport:
    people: list[str]
    photos: int
    enrolled: int
    skipped: list[Skipped] = field(default_factory=list)
    several_faces: int = 0  # photos with more than one face (the largest was enrolled)
    threshold: float | None = None  # recomputed from the stored calibration faces, if any


@dataclass
class CheckinReport:
    session: str
    photos: int
    faces: list[CheckinRow] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class CalibrationReport:
    faces: int
    far: float
    threshold: float
    accepted: int  # calibration faces the threshold still names
    skipped: list[Skipped] = field(default_factory=list)


class Attendance:
    """Enrol, calibrate and check in on the database at `database`, with `recognizer`'s embeddings of the faces
    `finder` aligns; `timeout`: seconds to wait for another process's write."""

    def __init__(
        self, database: Path, recognizer: Embedder, finder: FaceFinder, timeout: float = BUSY_TIMEOUT_S
    ) -> None:
        self.database, self.recognizer, self.finder, self.timeout = Path(database), recognizer, finder, timeout

    @property
    def model(self) -> str:
        return self.recognizer.fingerprint

    def enrol(self, roster: Path) -> EnrolReport:
        """Enrol everyone of ``roster/<person>/<photo>`` from the largest face of each photo; people enrolled
        before are enrolled anew from these photos, the others are kept."""
        if self.database.exists():  # refuse another model's database before the long part
            with self._open(create=True) as db:
                db.check_model(self.model, self.finder.size)
        people, skipped = roster_photos(roster)
        found = self._find([photo for _, photo in people], skipped, largest_only=True)
        faces = self._embed(found, skipped)
        person_of = {display_path(photo): person for person, photo in people}
        photos: dict[str, list[tuple[str, np.ndarray]]] = {}
        for face in faces:
            photos.setdefault(person_of[face.photo], []).append((face.photo, face.embedding))
        if not photos:
            raise AttendanceError(f"{roster}: no face enrolled: all {len(people)} photos were skipped")
        prototypes = {person: _normalise(np.mean([e for _, e in pairs], axis=0)) for person, pairs in photos.items()}
        with self._open(create=True) as db, db.write():
            db.initialise(self.model, self.finder.size)
            db.replace_people(photos, prototypes, _now())
            calibration = db.calibration()
            threshold = None
            if calibration is not None:  # the roster changed: the stored calibration faces set the threshold anew
                threshold = _threshold(db.roster(), db.calibration_embeddings(), calibration.far)
                db.set_calibration(None, threshold, calibration.far)
        several = sum(photo.detected > 1 for photo in found)
        return EnrolReport(sorted(photos), len(people), len(faces), skipped, several, threshold)

    def calibrate(self, folder: Path, far: float) -> CalibrationReport:
        """Set the threshold on every face of the photos under `folder`, of people NOT on the roster, so that at
        most `far` of them would be named; the faces are kept, so that a later enrolment can set it again."""
        photos, skipped = _photos(folder)
        with self._open() as db, db.read():
            db.check_model(self.model, self.finder.size)
            roster = db.roster()
        clash = sorted(_person_folders(Path(folder), photos) & set(roster.names))
        if clash:
            raise AttendanceError(
                f"{Path(folder) / clash[0]}: {clash[0]} is on the roster; calibration needs photos of people NOT on it"
            )
        faces = self._embed(self._find(photos, skipped), skipped)
        if not faces:
            raise AttendanceError(f"{folder}: no face to calibrate on: all {len(photos)} photos were skipped")
        embeddings = np.stack([f.embedding for f in faces])
        with self._open() as db, db.write():
            db.check_model(self.model, self.finder.size)
            roster = db.roster()
            threshold = _threshold(roster, embeddings, far)
            db.set_calibration([(f.photo, f.face, f.embedding) for f in faces], threshold, far)
        accepted = int((_classifier(roster).predict(embeddings).score > threshold).sum())
        return CalibrationReport(len(faces), far, threshold, accepted, skipped)

    def checkin(self, path: Path, session: str) -> CheckinReport:
        """Name every face of the photo `path` (or of every photo under the folder `path`) and record it."""
        photos, skipped = _photos(path)
        with self._open() as db, db.read():
            db.check_model(self.model, self.finder.size)
            roster, calibration = db.roster(), db.calibration()
        if calibration is None:
            raise AttendanceError(
                f"{self.database}: no threshold yet, so every stranger would be named: run `facegen attend calibrate "
                f"NONROSTER_DIR --db {self.database}` on photos of people not on the roster first"
            )
        report = CheckinReport(session, len(photos), skipped=skipped)
        faces = self._embed(self._find(photos, skipped), skipped)
        if faces:
            prediction = _classifier(roster).predict(np.stack([f.embedding for f in faces]))
            time = _now()
            for face, label, score in zip(faces, prediction.label, prediction.score, strict=True):
                nearest = str(roster.names[label])
                person = nearest if score > calibration.threshold else None
                report.faces.append(CheckinRow(time, session, face.photo, face.face, person, nearest, float(score)))
            with self._open() as db, db.write():
                db.add_checkins(report.faces)
        return report

    def _open(self, create: bool = False) -> AttendanceDatabase:
        return AttendanceDatabase(self.database, create=create, timeout=self.timeout)

    def _find(self, photos: Sequence[Path], skipped: list[Skipped], largest_only: bool = False) -> list[PhotoFaces]:
        """The aligned faces of each photo; a photo that cannot be read or holds no usable face is skipped."""
        found = []
        for photo in tqdm(photos, desc="find faces", unit="photo", disable=len(photos) < 50):
            try:
                faces = self.finder.faces(photo, largest_only)
            except NoUsableFace as err:
                skipped.append(Skipped(display_path(photo), str(err)))
                continue
            except OSError as err:  # CorruptImageError (names the file), or a file that vanished or is not allowed
                skipped.append(Skipped(display_path(photo), _without(str(err), display_path(photo)), UNREADABLE))
                continue
            skipped.extend(Skipped(display_path(photo), problem) for problem in faces.problems)
            found.append(faces)
        return found

    def _embed(self, found: list[PhotoFaces], skipped: list[Skipped]) -> list[Face]:
        """One L2-normalised embedding per face; faces the recognizer cannot embed are skipped."""
        crops = [crop for photo in found for crop in photo.crops]
        if not crops:
            return []
        embeddings = np.asarray(self.recognizer.embed(np.stack(crops)), np.float64)
        keys = [(photo.photo, number) for photo in found for number in photo.numbers]
        faces = []
        for (photo, number), embedding in zip(keys, embeddings, strict=True):
            if np.isfinite(embedding).all() and np.linalg.norm(embedding) > 0:
                faces.append(Face(photo, number, _normalise(embedding)))
            else:
                skipped.append(Skipped(photo, f"face {number}: {NO_EMBEDDING}"))
        return faces


def roster_photos(roster: Path) -> tuple[list[tuple[str, Path]], list[Skipped]]:
    """(person, photo) for every photo under ``roster/<person>/``, and the files that cannot be enrolled."""
    roster = Path(roster)
    if not roster.is_dir():
        raise FileNotFoundError(f"{roster}: no such folder (expected ROSTER_DIR/<person>/<photo>.jpg)")
    photos, skipped = _photos(roster)
    people = []
    for photo in photos:
        parts = photo.relative_to(roster).parts
        if len(parts) == 1:
            skipped.append(
                Skipped(display_path(photo), "not in a per-person folder (ROSTER_DIR/<person>/<photo>)", NOT_USED)
            )
        elif parts[0] == UNKNOWN:
            skipped.append(
                Skipped(display_path(photo), f"{UNKNOWN!r} names faces not on the roster: rename the folder", NOT_USED)
            )
        else:
            people.append((display_path(parts[0]), photo))  # a name that is no UTF-8 shows as \\xNN
    if not people:
        raise AttendanceError(f"{roster}: no photos in per-person folders (expected ROSTER_DIR/<person>/<photo>.jpg)")
    return people, skipped


def _photos(path: Path) -> tuple[list[Path], list[Skipped]]:
    photos, others = photo_files(path)
    return photos, [Skipped(file, reason, UNREADABLE) for file, reason in others]


def skip_counts(skipped: Sequence[Skipped]) -> str:
    """E.g. "3 skipped: 1 unreadable, 2 without a usable face" (photos in the wrong place, when there are any)."""
    counts = {kind: sum(s.kind == kind for s in skipped) for kind in (UNREADABLE, NO_FACE, NOT_USED)}
    shown = [f"{n} {kind}" for kind, n in counts.items() if n or kind != NOT_USED]
    return f"{len(skipped)} skipped: {', '.join(shown)}"


def _person_folders(root: Path, photos: Sequence[Path]) -> set[str]:
    """The names of the folders right under `root` that hold photos (the people of a folder-per-person set)."""
    return {
        display_path(photo.relative_to(root).parts[0])
        for photo in photos
        if root in photo.parents and photo.parent != root
    }


def _classifier(roster: Roster) -> NearestClassMean:
    if not len(roster.names):
        raise AttendanceError("no one is enrolled yet: run `facegen attend enrol ROSTER_DIR` first")
    return NearestClassMean.from_prototypes(roster.names, roster.prototypes)


def _threshold(roster: Roster, calibration: np.ndarray, far: float) -> float:
    """The cosine above which at most `far` of the calibration faces would be named."""
    return threshold_at_far(_classifier(roster).predict(calibration).score, far)


def _normalise(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _without(message: str, photo: str) -> str:
    """An error message without the photo's name in front (the report names it already)."""
    return message.removeprefix(f"{photo}: ")
