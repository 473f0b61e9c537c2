"""Stage `photo_folder` (studies/ownphotos): a folder of a user's own photos, of people no model here has seen.

Chooses `photo_folder.people` CelebA people of `photo_folder.celeba_root` with at least `min_photos` photos and no
folder in `photo_folder.exclude_folder` (faces64), writes their original JPEGs to `photo_folder.out`
(``<person>/<photo>.jpg``) and lists them in `photo_folder.people_csv`, which the distillation reads to leave
them out. The study then prepares the folder as a user would (`data.source: folder`, `detect_faces: true`).
Run by `dvc repro photo_folder`, or standalone: `python -m pipelines.photo_folder [--params FILE]`.
"""

from __future__ import annotations

import os

from prefect import flow, task

from facegen.config import PhotoFolderConfig, load_params
from facegen.data.celeba import CelebA
from facegen.data.photo_folder import choose_people, write_people, write_photo_folder
from facegen.io import check_separate
from pipelines import run_from_command_line


@task
def make_folder(config: PhotoFolderConfig) -> dict:
    check_separate(config.out, [config.celeba_root, config.exclude_folder], "photo_folder.out")
    faces = CelebA(config.celeba_root)
    exclude = set()
    if config.exclude_folder is not None:
        exclude = {e.name for e in os.scandir(config.exclude_folder) if e.is_dir()}
    chosen = choose_people(faces, people=config.people, min_photos=config.min_photos, exclude=exclude, seed=config.seed)
    photos = write_photo_folder(faces, chosen, config.out)
    write_people(chosen, config.people_csv)
    return {"people": len(chosen), "photos": photos, "excluded_people": len(exclude)}


@flow(name="photo_folder", log_prints=True)
def photo_folder_flow(params_file: str = "params.yaml") -> dict:
    report = make_folder(load_params(params_file).photo_folder)
    print(f"{report['photos']} photos of {report['people']} people written")
    return report


if __name__ == "__main__":
    run_from_command_line(photo_folder_flow, __doc__)
