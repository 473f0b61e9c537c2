"""Taking attendance on a user's own photos (``facegen attend``): enrol a folder-per-person roster, calibrate the
open-set threshold on people not on it, check the faces of new photos in, and write the attendance log.

``faces``: photos to aligned faces (MTCNN landmarks, as stage `prepare`); ``recognizer``: the embedding model of
``recognition.pretrained``; ``database``: the SQLite store; ``service``: the steps; ``log``: the CSV.
"""

from recognition.attendance.database import AttendanceDatabase, AttendanceError
from recognition.attendance.faces import FaceFinder
from recognition.attendance.log import attendance_rows, format_log, write_log
from recognition.attendance.recognizer import load_recognizer
from recognition.attendance.service import UNKNOWN, Attendance, skip_counts

__all__ = [
    "UNKNOWN",
    "Attendance",
    "AttendanceDatabase",
    "AttendanceError",
    "FaceFinder",
    "attendance_rows",
    "format_log",
    "load_recognizer",
    "skip_counts",
    "write_log",
]
