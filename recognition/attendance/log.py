"""The attendance log: per session, who was seen (first check-in time, best score and its photo), who on the
roster was not, and the faces nobody on the roster matched, as a CSV.

A log file is written atomically, and only over a file that is itself a facegen attendance log (its header line
says so): a user's own file of that name is never overwritten."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from facegen.io import atomic_file
from recognition.attendance.database import AttendanceDatabase, AttendanceError, CheckinRow

COLUMNS = ("session", "status", "person", "time", "score", "photo", "face")
HEADER = ",".join(COLUMNS)
PRESENT, ABSENT, UNKNOWN_FACE = "present", "absent", "unknown"


def attendance_rows(database: AttendanceDatabase, session: str | None = None) -> list[tuple]:
    """The log's rows (``COLUMNS``) of `session` (None: every session, in the order they began)."""
    with database.read():
        checkins, people = database.checkins(session), list(database.roster().names)
    if session and not checkins:
        raise AttendanceError(f"{database.path}: no check-ins in session {session!r}; {_sessions(database)}")
    sessions: dict[str, list[CheckinRow]] = {}
    for row in checkins:
        sessions.setdefault(row.session, []).append(row)
    return [row for name, rows in sessions.items() for row in _session_rows(name, rows, people)]


def format_log(rows: list[tuple]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return text.getvalue()


def write_log(rows: list[tuple], out: Path) -> None:
    """Write the log to `out` atomically; an existing file is replaced only if it is a facegen attendance log."""
    out = Path(out)
    if out.is_symlink():  # dangling or not: writing would replace the link, or write where it points
        raise AttendanceError(f"{out}: is a symbolic link; not written: give another -o, or remove the link")
    if out.exists() and not _is_log(out):
        raise AttendanceError(
            f"{out}: exists and is not a facegen attendance log (its first line is not {HEADER!r}); not overwritten: "
            "give another -o, or move that file away"
        )
    with atomic_file(out, "w") as f:
        f.write(format_log(rows))


def _session_rows(session: str, rows: list[CheckinRow], people: list[str]) -> list[tuple]:
    seen: dict[str, list[CheckinRow]] = {}
    for row in rows:
        if row.person is not None:
            seen.setdefault(row.person, []).append(row)
    result = []
    for person, checkins in sorted(seen.items(), key=lambda item: item[1][0].time):
        best = max(checkins, key=lambda r: r.score)
        result.append((session, PRESENT, person, checkins[0].time, f"{best.score:.4f}", best.photo, best.face))
    result += [(session, ABSENT, person, "", "", "", "") for person in people if person not in seen]
    result += [(session, UNKNOWN_FACE, "", r.time, f"{r.score:.4f}", r.photo, r.face) for r in rows if r.person is None]
    return result


def _sessions(database: AttendanceDatabase) -> str:
    names = list(dict.fromkeys(row.session for row in database.checkins()))
    return f"the sessions are: {', '.join(names)}" if names else "there are no check-ins yet"


def _is_log(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return f.readline().rstrip("\r\n") == HEADER
    except (OSError, UnicodeDecodeError):
        return False
