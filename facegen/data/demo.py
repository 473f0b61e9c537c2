"""Demo faces: procedurally drawn people written in the official CelebA layout, offline, in seconds.

Each identity has fixed geometry, skin tone and hair; each photo varies pose, lighting and background,
and the per-photo attributes (glasses, smile, open mouth, hat, lipstick). Every attribute in
``RENDERED_ATTRIBUTES`` is really drawn, with CelebA-like imbalance (Eyeglasses near 7%), so the data
is exact ground truth: a controlled benchmark as well as the offline default.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from facegen.data.annotations import (ATTR_FILE, CELEBA_ATTRIBUTES, IDENTITY_FILE, IMAGES_DIR, IMAGES_ZIP,
                                      PARTITION_FILE, write_attributes, write_identities, write_partition)
from facegen.io import atomic_dir

RENDERED_ATTRIBUTES: tuple[str, ...] = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Gray_Hair", "Male",
    "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Smiling", "Wearing_Hat", "Wearing_Lipstick",
    "Young",
)
HAIR_COLOURS = {"Black_Hair": (28, 24, 24), "Blond_Hair": (222, 190, 115), "Brown_Hair": (105, 66, 38),
                "Gray_Hair": (172, 172, 176), "other": (160, 72, 38)}
WIDTH, HEIGHT, SCALE = 178, 218, 2  # drawn at SCALE x and downsampled, for smooth edges
SPEC_FILE = "demo.json"


@dataclass(frozen=True)
class DemoSpec:
    identities: int = 200
    images_per_identity: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or (f.name != "seed" and value < 1):
                raise ValueError(f"DemoSpec.{f.name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class IdentityTraits:
    """What stays fixed for one person: geometry, colours, and identity-level attributes."""

    face_w: float
    face_h: float
    eye_gap: float
    eye_size: float
    nose_len: float
    mouth_w: float
    skin: tuple[int, int, int]
    iris: tuple[int, int, int]
    hair_jitter: int
    glasses_rate: float
    smile_rate: float
    hat_rate: float
    lipstick_rate: float
    attributes: dict[str, bool]


@dataclass(frozen=True)
class View:
    """What changes from photo to photo: pose, lighting, background."""

    dx: float
    dy: float
    angle: float
    scale: float
    light: float
    brightness: float
    background: tuple[int, int, int]


def sample_traits(rng: np.random.Generator) -> IdentityTraits:
    male, young = rng.random() < 0.42, rng.random() < 0.78
    bald = male and rng.random() < 0.05
    hair = "none" if bald else rng.choice(
        ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "other"],
        p=[0.26, 0.17, 0.22, 0.0, 0.35] if young else [0.2, 0.08, 0.17, 0.2, 0.35])
    beard = male and rng.random() < 0.4
    attributes = {
        "Male": male, "Young": young, "Bald": bald, "Pale_Skin": rng.random() < 0.04,
        "Bangs": not bald and rng.random() < (0.06 if male else 0.24),
        "No_Beard": not beard, "Mustache": beard and rng.random() < 0.25,
        **{name: hair == name for name in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")},
    }
    tone = rng.random()
    skin = tuple(int(a + (b - a) * tone) for a, b in zip((250, 222, 196), (118, 78, 54)))
    return IdentityTraits(
        face_w=rng.uniform(33, 42) * (1.08 if male else 1.0), face_h=rng.uniform(46, 54),
        eye_gap=rng.uniform(14, 19), eye_size=rng.uniform(4.2, 6.0), nose_len=rng.uniform(10, 17),
        mouth_w=rng.uniform(13, 18), skin=skin, iris=tuple(int(c) for c in rng.integers(30, 150, 3)),
        hair_jitter=int(rng.integers(-18, 19)),
        glasses_rate=0.35 if rng.random() < 0.2 else 0.0, smile_rate=rng.uniform(0.25, 0.71),
        hat_rate=0.32 if rng.random() < 0.15 else 0.0, lipstick_rate=0.0 if male else 0.8,
        attributes=attributes,
    )


def sample_photo_attributes(traits: IdentityTraits, rng: np.random.Generator) -> dict[str, bool]:
    smiling = rng.random() < traits.smile_rate
    return {
        **traits.attributes,
        "Smiling": smiling,
        "Mouth_Slightly_Open": rng.random() < (0.65 if smiling else 0.32),
        "Eyeglasses": rng.random() < traits.glasses_rate,
        "Wearing_Hat": rng.random() < traits.hat_rate,
        "Wearing_Lipstick": rng.random() < traits.lipstick_rate,
    }


def sample_view(rng: np.random.Generator) -> View:
    return View(dx=rng.uniform(-6, 6), dy=rng.uniform(-6, 6), angle=rng.uniform(-8, 8), scale=rng.uniform(0.95, 1.05),
                light=rng.uniform(-1, 1), brightness=rng.uniform(0.85, 1.1),
                background=tuple(int(c) for c in rng.integers(40, 230, 3)))


def render_face(traits: IdentityTraits, attributes: Mapping[str, bool], view: View) -> Image.Image:
    """Draw one 178x218 RGB photo of a person with the given attributes."""
    canvas = Image.new("RGB", (WIDTH * SCALE, HEIGHT * SCALE), view.background)
    _Painter(ImageDraw.Draw(canvas), traits, attributes).paint()
    # One bilinear affine map does pose (shift, rotation, scale) and the 2x downsampling together.
    theta = np.deg2rad(view.angle)
    cos, sin = np.cos(theta) / view.scale, np.sin(theta) / view.scale
    cx, cy = 89 + view.dx, 118 + view.dy
    matrix = (SCALE * cos, SCALE * sin, SCALE * (89 - cos * cx - sin * cy),
              -SCALE * sin, SCALE * cos, SCALE * (118 + sin * cx - cos * cy))
    photo = canvas.transform((WIDTH, HEIGHT), Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR,
                             fillcolor=view.background)
    gain = view.brightness * (1 + 0.25 * view.light * np.linspace(-1, 1, WIDTH, dtype=np.float32))[None, :, None]
    return Image.fromarray(np.clip(np.asarray(photo, dtype=np.float32) * gain, 0, 255).astype(np.uint8))


class _Painter:
    """Draws the parts of a face, back to front, in SCALE x coordinates centred on the face."""

    def __init__(self, draw: ImageDraw.ImageDraw, traits: IdentityTraits, attributes: Mapping[str, bool]) -> None:
        self.draw, self.t, self.a = draw, traits, attributes
        self.cx, self.cy = 89.0, 122.0
        hair = next((HAIR_COLOURS[n] for n in HAIR_COLOURS if n != "other" and attributes.get(n)), HAIR_COLOURS["other"])
        skin = (250, 238, 230) if attributes.get("Pale_Skin") else traits.skin
        if not attributes.get("Young", True):  # older skin: duller, greyer
            skin = tuple(int(0.7 * c + 0.3 * 150) for c in skin)
        self.skin = skin
        self.hair = _contrasting(tuple(int(np.clip(c + traits.hair_jitter, 0, 255)) for c in hair), skin)
        self.dark = tuple(int(c * 0.55) for c in skin)

    def _box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [v * SCALE for v in (self.cx + x0, self.cy + y0, self.cx + x1, self.cy + y1)]

    def _line(self, points: list[tuple[float, float]], fill, width: float) -> None:
        self.draw.line([((self.cx + x) * SCALE, (self.cy + y) * SCALE) for x, y in points], fill=fill,
                       width=max(1, round(width * SCALE)), joint="curve")

    def _polygon(self, points: list[tuple[float, float]], fill) -> None:
        self.draw.polygon([((self.cx + x) * SCALE, (self.cy + y) * SCALE) for x, y in points], fill=fill)

    def paint(self) -> None:
        w, h, a = self.t.face_w, self.t.face_h, self.a
        has_hair = not a.get("Bald")
        if has_hair and not a.get("Male"):  # long hair behind the head
            self.draw.rounded_rectangle(self._box(-w - 9, -h - 8, w + 9, h + 34), radius=30 * SCALE, fill=self.hair)
        self.draw.rectangle(self._box(-w * 0.42, h * 0.6, w * 0.42, h + 40), fill=self.skin)  # neck
        self.draw.ellipse(self._box(-w - 5, -8, -w + 5, 12), fill=self.skin)  # ears
        self.draw.ellipse(self._box(w - 5, -8, w + 5, 12), fill=self.skin)
        self.draw.ellipse(self._box(-w, -h, w, h), fill=self.skin)
        if a.get("Male"):  # a broader, squarer jaw
            self._polygon([(-w * 0.98, 5), (-w * 0.78, h * 0.8), (-w * 0.3, h * 1.02), (w * 0.3, h * 1.02),
                           (w * 0.78, h * 0.8), (w * 0.98, 5)], self.skin)
        if not a.get("No_Beard", True):
            self._polygon([(-w * 0.95, 10), (-w * 0.75, h * 0.82), (-w * 0.3, h * 1.05), (w * 0.3, h * 1.05),
                           (w * 0.75, h * 0.82), (w * 0.95, 10), (w * 0.55, h * 0.55), (-w * 0.55, h * 0.55)],
                          self.hair)
        if not a.get("Young", True):
            self._wrinkles()
        self._eyes()
        self._line([(0, -4), (-3, self.t.nose_len), (2, self.t.nose_len + 1)], self.dark, 1.4)
        self._mouth()
        if a.get("Mustache"):
            self._polygon([(-self.t.mouth_w * 1.1, self.t.nose_len + 10), (0, self.t.nose_len + 3),
                           (self.t.mouth_w * 1.1, self.t.nose_len + 10), (self.t.mouth_w * 0.8, self.t.nose_len + 13),
                           (-self.t.mouth_w * 0.8, self.t.nose_len + 13)], self.hair)
        if a.get("Bald"):
            self.draw.ellipse(self._box(-w * 0.35, -h * 0.92, w * 0.1, -h * 0.72), fill=_lighter(self.skin, 0.35))
        elif not a.get("Wearing_Hat"):
            self.draw.chord(self._box(-w - 3, -h - 8, w + 3, h * 0.2), 180, 360, fill=self.hair)
        if a.get("Bangs") and has_hair:
            fringe = -self.t.eye_size * 3.1  # down to just above the brows
            zigzag = [(x, fringe - (5 if i % 2 else 0)) for i, x in enumerate(np.linspace(w * 0.9, -w * 0.9, 9))]
            self._polygon([(-w * 0.95, -h * 0.75), (w * 0.95, -h * 0.75), *zigzag], self.hair)
        if a.get("Eyeglasses"):
            self._glasses()
        if a.get("Wearing_Hat"):
            self.draw.rounded_rectangle(self._box(-w * 0.92, -h - 22, w * 0.92, -h * 0.45), radius=8 * SCALE,
                                        fill=(40, 60, 120))
            self.draw.rectangle(self._box(-w - 14, -h * 0.55, w + 14, -h * 0.42), fill=(30, 45, 95))

    def _wrinkles(self) -> None:
        w, h = self.t.face_w, self.t.face_h
        for y in (-h * 0.62, -h * 0.52, -h * 0.42):
            self._line([(-w * 0.45, y + 2), (0, y), (w * 0.45, y + 2)], self.dark, 1.4)
        for side in (-1, 1):
            self._line([(side * 9, self.t.nose_len - 2), (side * (self.t.mouth_w + 5), self.t.nose_len + 16)],
                       self.dark, 1.4)
            g, s = self.t.eye_gap, self.t.eye_size
            self._line([(side * g - s * 1.4, s * 1.5), (side * g, s * 2.2), (side * g + s * 1.4, s * 1.5)],
                       self.dark, 1.2)  # bags under the eyes

    def _eyes(self) -> None:
        g, s = self.t.eye_gap, self.t.eye_size
        brow = tuple(int(c * 0.7) for c in self.hair) if not self.a.get("Bald") else self.dark
        for side in (-1, 1):
            x = side * g
            self.draw.ellipse(self._box(x - s * 1.6, -s * 0.8, x + s * 1.6, s * 0.8), fill=(245, 245, 240))
            self.draw.ellipse(self._box(x - s * 0.75, -s * 0.75, x + s * 0.75, s * 0.75), fill=self.t.iris)
            self.draw.ellipse(self._box(x - s * 0.3, -s * 0.3, x + s * 0.3, s * 0.3), fill=(10, 10, 10))
            self._line([(x - s * 1.8, -s * 2.2), (x, -s * 2.7), (x + s * 1.8, -s * 2.2)], brow,
                       2.6 if self.a.get("Male") else 1.5)

    def _mouth(self) -> None:
        m, y = self.t.mouth_w, self.t.nose_len + 15
        lipstick = self.a.get("Wearing_Lipstick")
        lips = (190, 30, 50) if lipstick else tuple(int(c * 0.6) for c in self.skin)
        width = 4.5 if lipstick else 3.2
        if self.a.get("Mouth_Slightly_Open"):
            top, bottom = (y - 3, y + 10) if self.a.get("Smiling") else (y - 4, y + 7)
            self.draw.ellipse(self._box(-m * 0.8, top, m * 0.8, bottom), fill=lips)
            self.draw.ellipse(self._box(-m * 0.6, top + 2, m * 0.6, bottom - 2), fill=(60, 15, 20))
            if self.a.get("Smiling"):
                self.draw.rectangle(self._box(-m * 0.5, top + 2, m * 0.5, top + 4), fill=(240, 240, 235))
        elif self.a.get("Smiling"):
            self._line([(-m, y - 6), (-m * 0.5, y + 2), (0, y + 4), (m * 0.5, y + 2), (m, y - 6)], lips, width)
        else:
            self._line([(-m * 0.85, y), (0, y + 0.8), (m * 0.85, y)], lips, width)

    def _glasses(self) -> None:
        g, s = self.t.eye_gap, self.t.eye_size
        frame, width = (25, 25, 30), max(1, round(1.6 * SCALE))
        for side in (-1, 1):
            self.draw.rounded_rectangle(self._box(side * g - s * 2.3, -s * 1.7, side * g + s * 2.3, s * 1.7),
                                        radius=3 * SCALE, outline=frame, width=width)
            self._line([(side * (g + s * 2.3), -s), (side * (self.t.face_w + 2), -s * 1.3)], frame, 1.6)
        self._line([(-g + s * 2.3, -s * 0.6), (0, -s * 1.1), (g - s * 2.3, -s * 0.6)], frame, 1.6)


def _contrasting(colour: tuple[int, int, int], against: tuple[int, int, int]) -> tuple[int, int, int]:
    """`colour`, darkened or lightened until its brightness differs clearly from `against` (hair vs skin)."""
    gap = sum(colour) / 3 - sum(against) / 3
    if abs(gap) >= 60:
        return colour
    return tuple(int(c * 0.45) for c in colour) if gap < 0 else _lighter(colour, 0.55)


def _lighter(colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(int(c + (255 - c) * amount) for c in colour)


def make_demo_celeba(root: Path | str, spec: DemoSpec = DemoSpec()) -> Path:
    """Write the four official CelebA files for `spec` under `root` (atomically); reuse a complete match."""
    root = Path(root)
    if (root / SPEC_FILE).is_file() and json.loads((root / SPEC_FILE).read_text()) == asdict(spec):
        return root
    n_images = spec.identities * spec.images_per_identity
    order = np.random.default_rng([spec.seed, 0]).permutation(n_images)  # file numbers not grouped by person
    split_of = _identity_splits(spec)
    rows: list[tuple[str, int, str, dict[str, bool]]] = []
    with atomic_dir(root) as tmp, zipfile.ZipFile(tmp / IMAGES_ZIP, "w", zipfile.ZIP_STORED) as archive:
        traits = {i: sample_traits(np.random.default_rng([spec.seed, i])) for i in range(1, spec.identities + 1)}
        for number, slot in enumerate(order, start=1):
            identity, photo = divmod(int(slot), spec.images_per_identity)
            identity += 1
            rng = np.random.default_rng([spec.seed, identity, photo])
            attributes = sample_photo_attributes(traits[identity], rng)
            image_id = f"{number:06d}.jpg"
            buffer = io.BytesIO()
            render_face(traits[identity], attributes, sample_view(rng)).save(buffer, "JPEG", quality=90)
            archive.writestr(zipfile.ZipInfo(f"{IMAGES_DIR}/{image_id}", date_time=(1980, 1, 1, 0, 0, 0)),
                             buffer.getvalue())
            rows.append((image_id, identity, split_of[identity], attributes))
        archive.close()
        _write_annotations(tmp, rows)
        (tmp / SPEC_FILE).write_text(json.dumps(asdict(spec)))
    return root


def _identity_splits(spec: DemoSpec) -> dict[int, str]:
    """About 80% / 10% / 10% of people in train / valid / test; nobody in two splits."""
    shuffled = np.random.default_rng([spec.seed, 1]).permutation(np.arange(1, spec.identities + 1))
    cut1, cut2 = round(0.8 * spec.identities), round(0.9 * spec.identities)
    return {int(i): "train" if k < cut1 else "valid" if k < cut2 else "test" for k, i in enumerate(shuffled)}


def _write_annotations(folder: Path, rows: list[tuple[str, int, str, dict[str, bool]]]) -> None:
    index = pd.Index([r[0] for r in rows], name="image_id")
    attributes = pd.DataFrame(0, index=index, columns=list(CELEBA_ATTRIBUTES), dtype="int8")
    for name in RENDERED_ATTRIBUTES:
        attributes[name] = [int(r[3][name]) for r in rows]
    write_attributes(folder / ATTR_FILE, attributes)
    write_identities(folder / IDENTITY_FILE, pd.Series([r[1] for r in rows], index=index))
    write_partition(folder / PARTITION_FILE, pd.Series([r[2] for r in rows], index=index))
