"""MTCNN alignment of large photos: photos per second with and without shrinking them before detection, and how far
the crops move (issue 27). Phone photos are 12 MP; MTCNN's time grows with the pixels it scans, the crop does not
need them: `prepare.max_detect_side` shrinks a photo for detection only and cuts the crop from the full photo.

    python -m bench.prepare_photos [--photos 20] [--scale 12]

The photos are CelebA photos of ../shared/celeba enlarged `scale` times (178 x 218 -> 2,136 x 2,616 at 12: 5.6 MP)
and written as JPEG files in a temporary folder-per-person layout; both runs go through `prepare_faces` in one
process (``workers=0``), after one warm-up photo. Prints JSON: photos/s each way, and the largest difference of the
five landmarks (in crop pixels) and of the crops' pixels between the two ways, beside the landmark shift between the
full photo and the same photo shrunk to 90% (how far MTCNN's points move with the scale anyway).

`batching` (issue 30) times MTCNN on the detection canvases of these photos and of the original CelebA photos
(178 x 218), one at a time as `prepare` runs it and `--block` equal-sized canvases per call, with the largest
landmark difference between the two: what batching photos by size would gain.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from facenet_pytorch import MTCNN
from PIL import Image

from facegen.cpu_kernels import pin_avx2_kernels
from facegen.data.align import similarity_transform, template
from facegen.data.folder import FaceFolder
from facegen.data.prepare import LandmarkAlign, prepare_faces
from facegen.data.prepared import PreparedFaces
from tests.support.shared import SHARED

NO_SHRINKING = 100_000


def make_photos(celeba_zip: Path, folder: Path, photos: int, scale: int) -> None:
    with zipfile.ZipFile(celeba_zip) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[:photos]
        for name in names:
            photo = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
            large = photo.resize((photo.width * scale, photo.height * scale), Image.Resampling.BICUBIC)
            (folder / "people" / Path(name).stem).mkdir(parents=True)
            large.save(folder / "people" / Path(name).stem / "photo.jpg", quality=92)


def timed_prepare(folder: Path, out: Path, max_detect_side: int) -> tuple[float, np.ndarray]:
    aligner = LandmarkAlign(64, max_detect_side=max_detect_side)
    faces = FaceFolder(folder)
    aligner(faces.load_image(0))  # warm-up: MTCNN's weights load once per process
    start = time.perf_counter()
    report = prepare_faces(faces, out, aligner, workers=0)
    seconds = time.perf_counter() - start
    return report.images_written / seconds, PreparedFaces(out).images


def batching(aligner: LandmarkAlign, photos: list[Image.Image], block: int) -> dict[str, float]:
    """MTCNN on the photos' detection canvases (all of one size here), one per call and `block` per call."""
    canvases = [aligner._detection_canvas(photo)[0] for photo in photos]  # what prepare hands MTCNN
    detector = MTCNN(keep_all=True, post_process=False)  # as LandmarkAlign builds it
    detector.detect(canvases[:1])  # warm-up
    start = time.perf_counter()
    single = [detector.detect(canvas, landmarks=True)[2][0] for canvas in canvases]
    single_seconds = time.perf_counter() - start
    start = time.perf_counter()
    batched = []
    for k in range(0, len(canvases), block):
        batched += [points[0] for points in detector.detect(canvases[k : k + block], landmarks=True)[2]]
    batched_seconds = time.perf_counter() - start
    return {
        "canvas_size": list(canvases[0].size),
        "photos_per_second_one_at_a_time": round(len(canvases) / single_seconds, 2),
        "photos_per_second_batched": round(len(canvases) / batched_seconds, 2),
        "speed_up": round(single_seconds / batched_seconds, 2),
        "landmark_difference_px_max": float(max(np.abs(a - b).max() for a, b in zip(single, batched))),
    }


def landmark_shift(full: LandmarkAlign, shrunk: LandmarkAlign, photo: Image.Image) -> float:
    """How far (in crop px) the landmarks found on the shrunk photo lie from those found on the full one."""
    points_full, _ = full.detect(photo)
    points_shrunk, _ = shrunk.detect(photo)
    to_crop = similarity_transform(points_full, template(64))[:, :2]  # photo px -> crop px (shift aside)
    return float(np.abs((points_shrunk - points_full) @ to_crop.T).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--scale", type=int, default=12)
    parser.add_argument("--max-detect-side", type=int, default=1024)
    parser.add_argument("--block", type=int, default=16, help="canvases per MTCNN call in the batching test")
    args = parser.parse_args()
    pin_avx2_kernels()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_photos(SHARED / "celeba" / "img_align_celeba.zip", folder, args.photos, args.scale)
        full_rate, full = timed_prepare(folder / "people", folder / "full", NO_SHRINKING)
        shrunk_rate, shrunk = timed_prepare(folder / "people", folder / "shrunk", args.max_detect_side)
        faces = FaceFolder(folder / "people")
        photo_size = faces.load_image(0).size
        full_aligner = LandmarkAlign(64, max_detect_side=NO_SHRINKING)
        nearly_full = LandmarkAlign(64, max_detect_side=int(0.9 * max(photo_size)))  # MTCNN's own jitter
        pairs = {"shrunk": LandmarkAlign(64, max_detect_side=args.max_detect_side), "at_90_percent": nearly_full}
        large = [faces.load_image(i) for i in range(len(faces))]
        with zipfile.ZipFile(SHARED / "celeba" / "img_align_celeba.zip") as zf:
            names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[: args.photos]
            small = [Image.open(io.BytesIO(zf.read(n))).convert("RGB") for n in names]
        shrinking = LandmarkAlign(64, max_detect_side=args.max_detect_side)
        batched = {"large": batching(shrinking, large, args.block), "celeba": batching(shrinking, small, args.block)}
        shifts = {
            name: max(landmark_shift(full_aligner, aligner, faces.load_image(i)) for i in range(min(5, len(faces))))
            for name, aligner in pairs.items()
        }
    difference = np.abs(full.astype(int) - shrunk.astype(int))
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "photos": args.photos,
                "photo_size": photo_size,
                "photos_per_second_full": round(full_rate, 2),
                "photos_per_second_shrunk": round(shrunk_rate, 2),
                "max_detect_side": args.max_detect_side,
                "speed_up": round(shrunk_rate / full_rate, 1),
                "landmark_shift_px_max": {name: round(shift, 2) for name, shift in shifts.items()},
                "crop_pixel_difference_mean": round(float(difference.mean()), 2),
                "crop_pixel_difference_p99": float(np.percentile(difference, 99)),
                "batching": {"block": args.block, **batched},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
