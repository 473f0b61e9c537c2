"""Processes for the interruption tests (tests/test_robustness_outputs.py) to kill.

``python -m tests.interrupt_target lock OUTPUT``: hold OUTPUT's lock, print "locked", wait to be killed.
``python -m tests.interrupt_target prepare PHOTOS OUT``: prepare PHOTOS into OUT with two loader workers,
slowly (0.2 s a photo), as `facegen` and the stages run it (SIGTERM unwinds); print "started" first.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facegen.data.prepare import CenterCropResize


class SlowCrop(CenterCropResize):
    """A centre crop that takes 0.2 s, so that a run lasts long enough to be killed in the middle."""

    def __call__(self, image: Image.Image, landmarks: np.ndarray | None = None) -> Image.Image:
        time.sleep(0.2)
        return super().__call__(image, landmarks)


def main(command: str, *paths: str) -> None:
    from facegen.processes import exit_on_sigterm

    exit_on_sigterm()
    if command == "lock":
        from facegen.locks import output_lock

        with output_lock(Path(paths[0])):
            print("locked", flush=True)
            time.sleep(600)
    else:
        from facegen.data.folder import FaceFolder
        from facegen.data.prepare import prepare_faces

        print("started", flush=True)
        prepare_faces(FaceFolder(paths[0]), Path(paths[1]), SlowCrop(16), workers=2, batch_size=2)


if __name__ == "__main__":
    main(*sys.argv[1:])
