"""Demo faces: procedurally drawn people written in the official CelebA layout, offline, in seconds.

Each person has fixed face geometry, skin, eye colour and hair; each photo varies pose, lighting, background,
clothes and the attributes that change from photo to photo (glasses, smile, open mouth, hat, make-up, ...).
Every attribute in ``RENDERED_ATTRIBUTES`` is really drawn and every other CelebA column is written as -1, so
the labels are exact ground truth. Rates follow CelebA's by sex and age, and the draws fixed per person are
stratified across the people of a demo, so even 200 people give marginals close to CelebA's.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from facegen.data.annotations import (
    ATTR_FILE,
    CELEBA_ATTRIBUTES,
    IDENTITY_FILE,
    IMAGES_DIR,
    IMAGES_ZIP,
    PARTITION_FILE,
    SPLIT_NAMES,
    write_attributes,
    write_identities,
    write_partition,
)
from facegen.io import Layout, atomic_dir, md5sum, read_text_file, write_json

RGB = tuple[int, int, int]

RENDERED_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Pale_Skin",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Young",
)  # in the official column order
HAIR_COLOURS: dict[str, RGB] = {
    "Black_Hair": (30, 26, 24),
    "Blond_Hair": (228, 196, 120),
    "Brown_Hair": (108, 66, 38),
    "Gray_Hair": (176, 176, 178),
}

# CelebA's rates (rounded) for young men, older men, young women and older women; for the draws fixed per person.
GROUP_RATES: dict[str, tuple[float, float, float, float]] = {
    "Bald": (0.02, 0.11, 0.0, 0.0),
    "Bangs": (0.11, 0.04, 0.18, 0.37),  # among people with hair
    "Pale_Skin": (0.03, 0.02, 0.06, 0.05),
    "beard": (0.41, 0.36, 0.0, 0.0),  # No_Beard = 0
    "Bushy_Eyebrows": (0.32, 0.12, 0.08, 0.02),
    "Narrow_Eyes": (0.115, 0.115, 0.115, 0.115),
    "smiles": (0.38, 0.43, 0.52, 0.68),  # the mean chance of smiling in a photo
    "glasses": (0.18, 0.54, 0.04, 0.17),  # share of people who wear glasses (in some photos)
    "hat": (0.23, 0.23, 0.07, 0.065),
    "lipstick": (0.0, 0.0, 0.9, 0.82),
    "makeup": (0.0, 0.0, 0.84, 0.7),  # chance of heavy make-up in a photo with lipstick
    "earrings": (0.0, 0.0, 0.57, 0.57),
}
HAIR_RATES = (  # Black, Blond, Brown, Gray by group as above; the rest is red
    (0.38, 0.02, 0.18, 0.0),
    (0.17, 0.02, 0.10, 0.26),
    (0.21, 0.23, 0.25, 0.0),
    (0.11, 0.29, 0.21, 0.09),
)
MALE_RATE = 0.417
YOUNG_RATES = (0.633, 0.874)  # men, women
BEARD_STYLE_RATES = {"Mustache": 0.25, "Goatee": 0.375, "Sideburns": 0.34}  # among bearded men
STUBBLE_RATE = 0.35  # 5_o_Clock_Shadow among men without a full beard
PHOTO_RATES = {"glasses": 0.4, "hat": 0.35, "lipstick": 0.9, "earrings": 0.57}  # in the photos of wearers
OPEN_RATE = {True: 0.76, False: 0.225}  # Mouth_Slightly_Open, by Smiling
ROSY_RATE = {True: 0.16, False: 0.015}  # Rosy_Cheeks of women, by Heavy_Makeup
BLURRY_RATE = 0.05
PHOTO_DRAWS = ("smiling", "open", "glasses", "hat", "lipstick", "makeup", "rosy", "earrings", "blurry")

WIDTH, HEIGHT, SUPERSAMPLE = 178, 218, 2  # drawn at SUPERSAMPLE x and reduced, for smooth edges
EYES_AT = (89.0, 112.0)  # where the point between the eyes lands in an unposed photo
JPEG_QUALITY = 90
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SPEC_FILE = "demo.json"
LAYOUT = Layout(
    "demo CelebA files",
    SPEC_FILE,
    (IMAGES_ZIP, ATTR_FILE, IDENTITY_FILE, PARTITION_FILE, SPEC_FILE),
    unstamped=lambda root: _is_demo_record(_recorded(root)),  # a demo made before stamps existed
)
SKIN_RANGE = ((246, 216, 194), (96, 62, 44))
PALE_SKIN: RGB = (252, 240, 234)
RED_HAIR_RANGE = ((204, 100, 48), (150, 52, 30))
IRIS_COLOURS: tuple[RGB, ...] = (
    (72, 46, 26),
    (42, 28, 20),
    (112, 86, 46),
    (70, 112, 72),
    (72, 112, 164),
    (112, 122, 132),
)
FRAME_COLOURS: tuple[RGB, ...] = ((22, 22, 26), (70, 42, 26), (30, 40, 80), (110, 24, 34))
LIPSTICK_COLOURS: tuple[RGB, ...] = ((176, 24, 48), (204, 60, 96), (130, 30, 60))
EYESHADOW_COLOURS: tuple[RGB, ...] = ((150, 80, 170), (90, 120, 200), (60, 150, 120), (200, 120, 70))
GOLD: RGB = (214, 176, 60)
WHITE: RGB = (255, 255, 255)
_ANGLES = np.linspace(0, 2 * np.pi, 40, endpoint=False)
_CIRCLE = np.column_stack([np.cos(_ANGLES), np.sin(_ANGLES)])
_SQUIRCLE = np.sign(_CIRCLE) * np.abs(_CIRCLE) ** 0.5  # a rounded square
_ACROSS = np.repeat(np.linspace(-1, 1, WIDTH, dtype=np.float32), 3)  # -1 at the left .. 1 at the right, per channel


@dataclass(frozen=True)
class DemoSpec:
    """How many people, how many photos of each, and the seed."""

    identities: int = 200
    images_per_identity: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            positive = f.name != "seed"
            if isinstance(value, bool) or not isinstance(value, int) or (value < 1 if positive else value < 0):
                kind = "a positive" if positive else "a non-negative"
                raise ValueError(f"DemoSpec.{f.name} must be {kind} integer, got {value!r}")


@dataclass(frozen=True)
class IdentityTraits:
    """One person's fixed looks, in px of the 178x218 photo; attributes (Male, hair colour, ...) come on top."""

    face_w: float  # half the width of the face at the cheekbones
    skull: float  # height of the top of the head above the eyes
    jaw: float  # 0: round, 1: square
    eye_gap: float  # half the distance between the eyes
    eye_size: float  # half the width of an eye
    brow_gap: float  # height of the brows above the eyes
    brow_tilt: float  # how much the outer ends of the brows rise
    nose_len: float  # depth of the nose tip below the eyes
    nose_w: float
    mouth_gap: float  # mouth below the nose tip
    mouth_w: float  # half the width of the mouth
    lip: float  # lip thickness
    chin_gap: float  # chin below the mouth
    skin: RGB
    iris: RGB
    red_hair: RGB  # the hair colour when none of the four named ones is on
    hair_tint: float  # -1..1: darker or lighter than the named colour
    hair_volume: float
    hair_length: float  # how far long hair falls below the chin
    hairline: float  # height of the hairline above the eyes
    frame: RGB  # glasses
    sunglasses: bool
    lipstick: RGB
    eyeshadow: RGB


@dataclass(frozen=True)
class View:
    """What changes from photo to photo besides attributes: pose, lighting, background, clothes, hat colour."""

    dx: float
    dy: float
    angle: float  # degrees
    scale: float
    light: float  # -1 (from the left) .. 1 (from the right)
    brightness: float
    background: RGB
    clothes: RGB
    hat: RGB


@dataclass(frozen=True)
class Person:
    """One demo identity: looks, fixed attributes, and the chance per photo of each varying attribute."""

    traits: IdentityTraits
    attributes: Mapping[str, bool]
    rates: Mapping[str, float]


@dataclass(frozen=True)
class Photo:
    """One planned image: whose, which split, its attributes and view."""

    identity: int
    split: str
    attributes: Mapping[str, bool]
    view: View


# --- sampling ------------------------------------------------------------------------------------------------


def sample_people(spec: DemoSpec) -> dict[int, Person]:
    """Every person of the demo by identity label (1, 2, ...)."""
    rng = np.random.default_rng([spec.seed, 0])
    attributes = _fixed_attributes(spec.identities, rng)
    rates = _photo_rates(attributes, rng)
    return {
        i: Person(
            sample_traits(np.random.default_rng([spec.seed, i])),
            {name: bool(values[i - 1]) for name, values in attributes.items()},
            {name: float(values[i - 1]) for name, values in rates.items()},
        )
        for i in range(1, spec.identities + 1)
    }


def _draw(chances: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One yes/no per person with the given chances, by systematic sampling over the people in a random order:
    each person still has exactly their chance, but the number of yeses stays within 1 of its expectation,
    so even a demo of few people gets CelebA-like marginals."""
    order = rng.permutation(len(chances))
    total = rng.random() + np.cumsum(chances[order])
    drawn = np.empty(len(chances), dtype=bool)
    drawn[order] = np.floor(total) > np.floor(total - chances[order])
    return drawn


def _fixed_attributes(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The attributes that belong to each of `n` people, consistent like CelebA's (e.g. Bald: no hair colour)."""
    male = _draw(np.full(n, MALE_RATE), rng)
    young = _draw(np.where(male, *YOUNG_RATES), rng)
    group = 2 * ~male + ~young  # index into GROUP_RATES

    def rate(name: str) -> np.ndarray:
        return np.asarray(GROUP_RATES[name])[group]

    bald = _draw(rate("Bald"), rng)
    hair = _hair_colours(group, bald, rng)
    beard = _draw(rate("beard"), rng)
    styles = {name: _draw(share * beard, rng) for name, share in BEARD_STYLE_RATES.items()}
    full_beard = beard & ~styles["Goatee"]
    return {
        "Male": male,
        "Young": young,
        "Bald": bald,
        **hair,
        "Bangs": _draw(rate("Bangs") * ~bald, rng),
        "Pale_Skin": _draw(rate("Pale_Skin"), rng),
        "No_Beard": ~beard,
        **styles,
        "5_o_Clock_Shadow": _draw(STUBBLE_RATE * (male & ~full_beard), rng),
        "Bushy_Eyebrows": _draw(rate("Bushy_Eyebrows"), rng),
        "Narrow_Eyes": _draw(rate("Narrow_Eyes"), rng),
    }


def _hair_colours(group: np.ndarray, bald: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """At most one named hair colour per person with hair (none: red), at the group's CelebA rates."""
    shares = np.asarray(HAIR_RATES)[group]
    taken, colours = bald.copy(), {}
    for k, name in enumerate(HAIR_COLOURS):  # each colour's chance among those not given an earlier one
        colours[name] = _draw(shares[:, k] / (1 - shares[:, :k].sum(axis=1)) * ~taken, rng)
        taken |= colours[name]
    return colours


def _photo_rates(attributes: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each person's chance per photo of the varying attributes: some smile more, only some wear glasses, etc."""
    group = 2 * ~attributes["Male"] + ~attributes["Young"]
    wearer_rates = {name: np.asarray(GROUP_RATES[name])[group] for name in PHOTO_RATES}
    wearer_rates["hat"] = wearer_rates["hat"] * ~attributes["Bald"]  # CelebA: a hat hides whether one is bald
    return {
        **{name: PHOTO_RATES[name] * _draw(wearer_rates[name], rng) for name in PHOTO_RATES},
        "smiles": np.asarray(GROUP_RATES["smiles"])[group] + rng.uniform(-0.2, 0.2, len(group)),
        "makeup": np.asarray(GROUP_RATES["makeup"])[group],
    }


def sample_traits(rng: np.random.Generator) -> IdentityTraits:
    """A person's looks: face geometry and colours, independent of the attributes."""

    def pick(options: tuple[RGB, ...]) -> RGB:
        return options[int(rng.integers(len(options)))]

    return IdentityTraits(
        face_w=rng.uniform(40, 46),
        skull=rng.uniform(58, 64),
        jaw=rng.random(),
        eye_gap=rng.uniform(16, 20),
        eye_size=rng.uniform(6, 7.5),
        brow_gap=rng.uniform(9, 12),
        brow_tilt=rng.uniform(-1.5, 1.5),
        nose_len=rng.uniform(22, 27),
        nose_w=rng.uniform(5, 7.5),
        mouth_gap=rng.uniform(10, 12.5),
        mouth_w=rng.uniform(12, 16),
        lip=rng.uniform(2, 3.4),
        chin_gap=rng.uniform(17, 22),
        skin=_mix(*SKIN_RANGE, rng.random() ** 2.2),  # mostly light, as in CelebA
        iris=pick(IRIS_COLOURS),
        red_hair=_mix(*RED_HAIR_RANGE, rng.random()),
        hair_tint=rng.uniform(-1, 1),
        hair_volume=rng.uniform(3, 9),
        hair_length=rng.uniform(0, 45),
        hairline=rng.uniform(26, 34),
        frame=pick(FRAME_COLOURS),
        sunglasses=bool(rng.random() < 0.15),
        lipstick=pick(LIPSTICK_COLOURS),
        eyeshadow=pick(EYESHADOW_COLOURS),
    )


def sample_photo_attributes(person: Person, rng: np.random.Generator) -> dict[str, bool]:
    """All rendered attributes of one photo of `person`."""
    u = dict(zip(PHOTO_DRAWS, rng.random(len(PHOTO_DRAWS))))
    r, female = person.rates, not person.attributes["Male"]
    smiling = bool(u["smiling"] < r["smiles"])
    lipstick = bool(u["lipstick"] < r["lipstick"])
    makeup = lipstick and bool(u["makeup"] < r["makeup"])
    return {
        **person.attributes,
        "Smiling": smiling,
        "Mouth_Slightly_Open": bool(u["open"] < OPEN_RATE[smiling]),
        "Eyeglasses": bool(u["glasses"] < r["glasses"]),
        "Wearing_Hat": bool(u["hat"] < r["hat"]),
        "Wearing_Lipstick": lipstick,
        "Heavy_Makeup": makeup,
        "Rosy_Cheeks": female and bool(u["rosy"] < ROSY_RATE[makeup]),
        "Wearing_Earrings": bool(u["earrings"] < r["earrings"]),
        "Blurry": bool(u["blurry"] < BLURRY_RATE),
    }


def sample_view(rng: np.random.Generator) -> View:
    """Pose (shift +-6 px, rotation +-8 deg, scale +-5%), side light, brightness and colours of one photo."""
    pose = rng.uniform((-6, -6, -8, 0.95, -1, 0.85), (6, 6, 8, 1.05, 1, 1.1))
    colours = [tuple(int(c) for c in rng.integers(lo, hi, 3)) for lo, hi in ((30, 235), (20, 200), (20, 220))]
    return View(*(float(v) for v in pose), *colours)


# --- drawing -------------------------------------------------------------------------------------------------


def render_face(traits: IdentityTraits, attributes: Mapping[str, bool], view: View) -> Image.Image:
    """Draw one 178x218 RGB photo of a person with the given attributes."""
    canvas = Image.new("RGB", (WIDTH * SUPERSAMPLE, HEIGHT * SUPERSAMPLE), view.background)
    _Painter(canvas, traits, attributes, view).paint()
    photo = canvas.reduce(SUPERSAMPLE)
    if attributes.get("Blurry"):
        photo = photo.filter(ImageFilter.GaussianBlur(2.2))
    lit = np.asarray(photo).reshape(HEIGHT, -1) * (view.brightness * (1 + 0.22 * view.light * _ACROSS))
    return Image.fromarray(np.clip(lit, 0, 255, out=lit).astype(np.uint8).reshape(HEIGHT, WIDTH, 3))


class _Painter:
    """Draws the parts of a face back to front. Points are in face coordinates: px of the unposed photo,
    origin between the eyes, y down; one affine map applies the pose and the supersampling."""

    def __init__(self, canvas: Image.Image, traits: IdentityTraits, attributes: Mapping[str, bool], view: View) -> None:
        self.draw, self.t, self.a, self.view = ImageDraw.Draw(canvas), traits, attributes, view
        theta = np.deg2rad(view.angle)
        cos, sin = np.cos(theta) * view.scale, np.sin(theta) * view.scale
        self.matrix = SUPERSAMPLE * np.array([[cos, sin], [-sin, cos]])
        self.offset = SUPERSAMPLE * np.array([EYES_AT[0] + view.dx, EYES_AT[1] + view.dy])
        self.male, self.has_hair = attributes.get("Male", False), not attributes.get("Bald", False)
        self.skin = _skin(traits, attributes)
        self.hair = _hair(traits, attributes)
        self.ink = _darker(self.skin, 0.55)  # lines and creases: dark enough to show on any skin
        self.beard = _darkest(_darker(self.hair, 0.75) if self.has_hair else (72, 62, 56), self.ink)
        self.w = traits.face_w * (1.06 if self.male else 1.0)
        self.mouth_y = traits.nose_len + traits.mouth_gap
        self.chin = self.mouth_y + traits.chin_gap
        self.outline = _head_outline(self.w, traits.skull, self.chin, traits.jaw + (0.9 if self.male else 0.0))

    def fill(self, points: np.ndarray, colour: RGB) -> None:
        self.draw.polygon((points @ self.matrix + self.offset).ravel().tolist(), fill=colour)

    def ring(self, points: np.ndarray, colour: RGB, width: float) -> None:
        self.draw.polygon(
            (points @ self.matrix + self.offset).ravel().tolist(),
            outline=colour,
            width=max(1, round(width * SUPERSAMPLE * self.view.scale)),
        )

    def paint(self) -> None:
        if self.has_hair and not self.male:
            self.long_hair()
        self.body()
        self.ears()
        self.head()
        self.facial_hair()
        self.eyes()
        self.nose()
        self.mouth()
        if self.a.get("Mustache"):
            self.mustache()
        self.top_of_head()
        if self.a.get("Eyeglasses"):
            self.glasses()

    def body(self) -> None:
        """Shoulders in the photo's clothes, and the neck."""
        self.fill(_ellipse(0, self.chin + 62, self.w * 2.1, 40), self.view.clothes)
        neck = np.array([[-0.42, 20], [0.42, 20], [0.48, 120], [-0.48, 120]]) * (self.w, 1)
        self.fill(neck, _darker(self.skin, 0.9))

    def head(self) -> None:
        """Skin (with a darker rim, wider on the side away from the light), then wrinkles and blush."""
        self.fill(self.outline, _darker(self.skin, 0.84))
        self.fill(self.outline * 0.93 + (3 * self.view.light, -1), self.skin)
        if not self.a.get("Young", True):
            self.wrinkles()
        if self.a.get("Rosy_Cheeks"):
            for side in (-1, 1):
                self.fill(
                    _ellipse(side * (self.t.eye_gap + 3), self.t.nose_len * 0.72, 7.5, 5),
                    _mix(self.skin, (226, 70, 96), 0.5),
                )

    def long_hair(self) -> None:
        """Hair behind the head, falling to the shoulders or below."""
        r, bottom = self.w + self.t.hair_volume + 4, self.chin + self.t.hair_length
        arc = _ellipse(0, 0, r, self.t.skull + self.t.hair_volume)[20:]  # the upper half, left to right
        ends = np.array([[r, bottom - 8], [r - 8, bottom], [8 - r, bottom], [-r, bottom - 8]])
        shape = np.concatenate([arc, ends])
        self.fill(shape, self.hair)
        self.ring(shape, _darker(self.hair, 0.8), 1.2)

    def ears(self) -> None:
        """Ears, with gold earrings on the lobes when worn."""
        for side in (-1, 1):
            self.fill(_ellipse(side * self.w, 8, 6.5, 13), _darker(self.skin, 0.93))
            if self.a.get("Wearing_Earrings"):
                self.fill(_ellipse(side * (self.w + 1), 24, 3.4, 3.4), GOLD)
                self.ring(_ellipse(side * (self.w + 1), 24, 3.4, 3.4), _darker(GOLD, 0.6), 0.8)

    def wrinkles(self) -> None:
        """Forehead lines, folds from nose to mouth, crow's feet."""
        t, line = self.t, self.ink
        for k in range(3):
            self.fill(_band(_arc(-self.w * 0.45, self.w * 0.45, -t.brow_gap - 6 - 4.5 * k, -1.5), 0.75), line)
        for side in (-1, 1):
            fold = np.array(
                [
                    [side * (t.nose_w + 2), t.nose_len - 3],
                    [side * (t.mouth_w + 2.5), self.mouth_y + 1],
                    [side * (t.mouth_w + 3), self.mouth_y + 6],
                ]
            )
            self.fill(_band(fold, 0.75), line)
            corner = side * (t.eye_gap + t.eye_size * 1.2)
            for dy in (-2.5, 0.5, 3.5):
                self.fill(_band(np.array([[corner, 0], [corner + side * 5, dy]]), 0.55), line)

    def facial_hair(self) -> None:
        """Stubble, then a full beard or a goatee, then sideburns (the mustache comes after the mouth)."""
        lower = self.lower_face()
        if self.a.get("5_o_Clock_Shadow"):
            self.fill(lower, _mix(self.skin, self.beard, 0.45))
        if self.a.get("Goatee"):
            self.fill(
                _ellipse(0, (self.mouth_y + self.chin) / 2 + 3, self.t.mouth_w * 0.72, self.t.chin_gap / 2 + 3),
                self.beard,
            )
        elif not self.a.get("No_Beard", True):
            self.fill(lower * [1.05, 1.04], self.beard)
        if self.a.get("Sideburns"):
            for side in (-1, 1):
                self.fill(_band(np.array([[side * (self.w - 4), -10], [side * (self.w - 5), 20]]), 3.2), self.beard)

    def lower_face(self) -> np.ndarray:
        """Jaw and chin below the cheeks, up to the corners of the mouth: where a beard grows."""
        cheek, m, y = self.t.nose_len * 0.5, self.t.mouth_w + 3, self.mouth_y - 2
        lower_half = self.outline[: len(self.outline) // 2]  # right to left
        jaw = lower_half[lower_half[:, 1] > cheek]
        return np.concatenate([jaw, [[-self.w * 0.9, cheek], [-m, y], [m, y], [self.w * 0.9, cheek]]])

    def eyes(self) -> None:
        """Eyes (narrow or open; eye shadow and eyeliner with heavy make-up) and brows (thick when bushy)."""
        t = self.t
        height = t.eye_size * (0.28 if self.a.get("Narrow_Eyes") else 0.52)
        makeup = self.a.get("Heavy_Makeup")
        brow = _darkest(_darker(self.hair, 0.7), self.ink) if self.has_hair else self.beard
        brow_width = 2.8 if self.a.get("Bushy_Eyebrows") else 1.35 if self.male else 0.85
        for side in (-1, 1):
            x = side * t.eye_gap
            if makeup:
                self.fill(_ellipse(x, -height - 2, t.eye_size * 1.35, 4.5), _mix(self.skin, t.eyeshadow, 0.6))
            self.fill(_ellipse(x, 0, t.eye_size, height), (242, 240, 234))
            iris = t.eye_size * 0.5
            self.fill(_ellipse(x, 0, iris, min(iris, height)), t.iris)
            self.fill(_ellipse(x, 0, iris * 0.45, min(iris * 0.45, height)), (12, 10, 10))
            self.fill(_band(_ellipse(x, 0, t.eye_size, height)[20:], 1.0 if makeup else 0.55), (34, 24, 22))
            ends = x - side * t.eye_size * 1.2, x + side * t.eye_size * 1.35
            arc = _arc(*ends, -t.brow_gap, -2.2) - np.outer(_steps(9) + 1, [0, t.brow_tilt / 2])
            self.fill(_band(arc, brow_width * (0.925 - 0.225 * _steps(9))), brow)

    def nose(self) -> None:
        """A shaded side, the tip and the nostrils."""
        t, shade = self.t, _darker(self.skin, 0.82)
        side = -1 if self.view.light > 0 else 1  # the shadow falls away from the light
        self.fill(_band(np.array([[side * 3, 2], [side * (t.nose_w * 0.55), t.nose_len - 4]]), 0.9), shade)
        self.fill(_ellipse(0, t.nose_len - 2.5, t.nose_w * 0.75, 3.2), _darker(self.skin, 0.93))
        for s in (-1, 1):
            self.fill(_ellipse(s * t.nose_w * 0.45, t.nose_len - 0.5, 1.7, 1.1), _darker(self.skin, 0.45))

    def mouth(self) -> None:
        """Lips around a mouth line; smiling widens the mouth, lifts and creases the corners; an open mouth
        shows a dark inside (and teeth when smiling)."""
        t, smiling, open_ = self.t, self.a.get("Smiling", False), self.a.get("Mouth_Slightly_Open", False)
        m, lift = t.mouth_w * (1.12 if smiling else 1.0), 6.5 if smiling else 0.4
        x, taper = m * _steps(13), np.sqrt(1 - _steps(13) ** 2)
        centre = self.mouth_y - lift * _steps(13) ** 2
        top = centre - (2.0 if open_ else 0.0) * taper**2
        bottom = centre + ((8.5 if smiling else 6.5) if open_ else 0.0) * taper**2
        lipstick = self.a.get("Wearing_Lipstick", False)
        lips = t.lipstick if lipstick else _mix(_darker(self.skin, 0.78), (180, 70, 70), 0.3)
        lip = t.lip * (1.25 if lipstick else 1.0) * taper
        self.fill(_outline(x, top - lip, bottom + lip * 1.2), lips)
        if open_:
            self.fill(_outline(x, top, bottom), (58, 16, 22))
            if smiling:
                self.fill(_outline(x, top, top + 2.6 * taper**2), (236, 234, 226))
        else:
            self.fill(_band(np.column_stack([x, centre]), 0.5 * taper + 0.25), _mix(lips, (20, 8, 8), 0.6))
        for side in (-1, 1) if smiling else ():
            crease = np.array([[m + 0.5, -lift - 4], [m + 2.5, -lift], [m + 1.5, 3.5 - lift]]) * (side, 1)
            self.fill(_band(crease + (0, self.mouth_y), 0.65), self.ink)

    def mustache(self) -> None:
        """A dark band over the upper lip."""
        m = self.t.mouth_w * 1.1
        bar = _arc(-m, m, self.mouth_y - self.t.lip - 3.2, -2.5, n=13)
        self.fill(_band(bar, 2.6 * np.sqrt(1 - _steps(13) ** 2) + 0.4), _darker(self.beard, 0.9))

    def top_of_head(self) -> None:
        """Hair (with bangs) or a bald crown, then a hat over it."""
        if self.has_hair:
            edge = _darkest(_darker(self.hair, 0.8), self.ink)
            cap = self.hair_cap()
            self.fill(cap, self.hair)
            self.ring(cap, edge, 1.2)
            if self.a.get("Bangs"):
                self.bangs(edge)
        else:  # a shine on the bald crown
            self.fill(_ellipse(-self.w * 0.2, -self.t.skull * 0.78, self.w * 0.3, 6), _mix(self.skin, WHITE, 0.3))
        if self.a.get("Wearing_Hat"):
            self.hat()

    def hair_cap(self) -> np.ndarray:
        """Hair over the skull down to a hairline that is high on the forehead and drops at the temples."""
        t = self.t
        volume = t.hair_volume * (0.45 if self.male else 1.0)
        r, side = self.w + volume, -4.0 if self.male else 6.0
        arc = _ellipse(0, side, r, t.skull + volume + side)[20:]
        x = -self.w * 0.98 * _steps(11)
        hairline = -t.hairline + (t.hairline + side) * (x / self.w) ** 4
        return np.concatenate([[[-r, side]], arc, [[r, side]], np.column_stack([x, hairline])])

    def bangs(self, edge: RGB) -> None:
        """A fringe over the forehead down to just above the brows: jagged, outlined, with strands."""
        bottom, top = -self.t.brow_gap - 3.5, -self.t.hairline - 4
        x = -self.w * 0.92 * _steps(11)
        jagged = np.column_stack([x, bottom - np.where(np.arange(11) % 2, 4.5, 0.0)])
        fringe = np.concatenate([[[-self.w * 0.96, top], [self.w * 0.96, top]], jagged])
        self.fill(fringe, self.hair)
        self.ring(fringe, edge, 1.0)
        for x in self.w * np.array([-0.6, -0.2, 0.2, 0.6]):
            self.fill(_band(np.array([[x * 0.8, top + 4], [x, bottom - 2]]), 0.5), edge)

    def hat(self) -> None:
        """A crown over the top of the head and a brim across the forehead."""
        brim = -self.t.hairline * 0.8
        r = self.w + 3
        crown = np.concatenate([_ellipse(0, brim, r * 0.95, self.t.skull + 12 + brim)[20:], [[r * 0.95, brim]]])
        self.fill(crown, self.view.hat)
        self.fill(_band(np.array([[-r - 11, brim + 1], [r + 11, brim + 1]]), 3.2), _darker(self.view.hat, 0.7))

    def glasses(self) -> None:
        """Frames around both eyes (dark lenses for people with sunglasses), bridge and temples."""
        t = self.t
        rx, ry = t.eye_size * 1.6, t.eye_size * 1.25
        for side in (-1, 1):
            lens = _superellipse(side * t.eye_gap, 0.5, rx, ry)
            if t.sunglasses:
                self.fill(lens, (28, 28, 34))
            self.ring(lens, t.frame, 1.8)
            self.fill(_band(np.array([[side * (t.eye_gap + rx - 0.5), -1], [side * (self.w + 1), -3]]), 0.9), t.frame)
        self.fill(_band(_arc(-t.eye_gap + rx - 0.5, t.eye_gap - rx + 0.5, -0.5, -2.0, n=5), 0.9), t.frame)


# --- geometry and colour helpers -----------------------------------------------------------------------------


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """40 points around an ellipse, clockwise on screen from the right; points 20.. are the upper half."""
    return _CIRCLE * (rx, ry) + (cx, cy)


def _superellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """A rounded rectangle-like loop (exponent 4), e.g. a spectacle lens."""
    return _SQUIRCLE * (rx, ry) + (cx, cy)


def _head_outline(w: float, skull: float, chin: float, jaw: float) -> np.ndarray:
    """A rounded skull over a jaw that is squarer as `jaw` grows (0..2); points 0..19 are the lower half."""
    lower = np.sign(_CIRCLE) * np.abs(_CIRCLE) ** (2 / (2 + jaw)) * (w, chin)
    return np.where(_CIRCLE[:, 1:] > 0, lower, _CIRCLE * (w * 1.02, skull))


@functools.cache
def _steps(n: int) -> np.ndarray:
    """n evenly spaced values from -1 to 1 (read-only: shared between calls)."""
    steps = np.linspace(-1, 1, n)
    steps.flags.writeable = False
    return steps


def _arc(x0: float, x1: float, y: float, bend: float, n: int = 9) -> np.ndarray:
    """n points from (x0, y) to (x1, y) along a parabola whose middle is `bend` lower (negative: higher)."""
    t = _steps(n)
    return np.column_stack([x0 + (x1 - x0) * (t + 1) / 2, y + bend * (1 - t * t)])


def _band(centre: np.ndarray, half_width: float | np.ndarray) -> np.ndarray:
    """The outline of a stroke of the given half width (per point or constant) along a polyline."""
    step = np.diff(centre, axis=0)
    step = np.concatenate([step[:1], step[:-1] + step[1:], step[-1:]])  # the direction at each point
    normal = step[:, ::-1] * (-1, 1) / np.hypot(step[:, :1], step[:, 1:])
    offset = normal * np.reshape(half_width, (-1, 1))
    return np.concatenate([centre + offset, (centre - offset)[::-1]])


def _outline(x: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """The region between two curves over the same x, as a polygon."""
    return np.concatenate([np.column_stack([x, top]), np.column_stack([x, bottom])[::-1]])


def _skin(traits: IdentityTraits, attributes: Mapping[str, bool]) -> RGB:
    skin = _mix(traits.skin, PALE_SKIN, 0.85) if attributes.get("Pale_Skin") else traits.skin
    grey = round(sum(skin) / 3)
    return skin if attributes.get("Young", True) else _mix(skin, (grey, grey, grey), 0.4)  # older: duller


def _hair(traits: IdentityTraits, attributes: Mapping[str, bool]) -> RGB:
    """The named hair colour that is on (else the person's red), a little darker or lighter per person."""
    base = next((colour for name, colour in HAIR_COLOURS.items() if attributes.get(name)), traits.red_hair)
    tint = traits.hair_tint * 0.12
    return _mix(base, WHITE, tint) if tint > 0 else _darker(base, 1 + tint)


def _mix(a: RGB, b: RGB, amount: float) -> RGB:
    """The colour `amount` (0..1) of the way from a to b."""
    return tuple(round(x + (y - x) * amount) for x, y in zip(a, b))  # type: ignore[return-value]


def _darkest(a: RGB, b: RGB) -> RGB:
    """Channel by channel, the darker of two colours."""
    return tuple(min(x, y) for x, y in zip(a, b))  # type: ignore[return-value]


def _darker(colour: RGB, factor: float) -> RGB:
    """The colour scaled by `factor` (below 1: darker)."""
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


# --- the files -----------------------------------------------------------------------------------------------


def make_demo_celeba(root: Path | str, spec: DemoSpec = DemoSpec()) -> Path:
    """Write img_align_celeba.zip and the three annotation files for `spec` under `root`, atomically.

    A root that already holds a complete demo of the same spec and generator is returned untouched; another
    demo is replaced; a non-empty folder that is not a demo is an error (it is never deleted)."""
    root = Path(root)
    record = {"spec": asdict(spec), "generator_md5": md5sum(Path(__file__))}
    recorded = _recorded(root)
    if recorded == record:
        return root
    people = sample_people(spec)
    photos = plan_photos(spec, people)
    with atomic_dir(root, LAYOUT) as tmp:
        _write_images(tmp / IMAGES_ZIP, people, photos)
        _write_annotations(tmp, photos)
        write_json(tmp / SPEC_FILE, record)  # last: its presence marks the demo complete
    return root


def _is_demo_record(record: object) -> bool:
    """Whether ``record`` is what `make_demo_celeba` writes into demo.json: a spec of exactly DemoSpec's fields
    and the generator's md5, nothing else."""
    if not isinstance(record, dict) or set(record) != {"spec", "generator_md5"}:
        return False
    md5, spec = record["generator_md5"], record["spec"]
    names = {f.name for f in fields(DemoSpec)}
    return isinstance(md5, str) and len(md5) == 32 and isinstance(spec, dict) and set(spec) == names


def _recorded(root: Path) -> object:
    """The record in root's demo.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads(read_text_file(root / SPEC_FILE, 1_000_000))
    except (OSError, ValueError):
        return None


def identity_splits(spec: DemoSpec) -> dict[int, str]:
    """About 80% / 10% / 10% of the people in train / valid / test; nobody in two splits."""
    shuffled = np.random.default_rng([spec.seed, 1]).permutation(spec.identities) + 1
    cut1, cut2 = round(0.8 * spec.identities), round(0.9 * spec.identities)
    return {int(i): "train" if k < cut1 else "valid" if k < cut2 else "test" for k, i in enumerate(shuffled)}


def plan_photos(spec: DemoSpec, people: Mapping[int, Person]) -> dict[str, Photo]:
    """Every photo by file name: numbered like CelebA (train, then valid, then test), people interleaved."""
    splits = identity_splits(spec)
    photos = []
    for identity, person in people.items():
        for k in range(spec.images_per_identity):
            rng = np.random.default_rng([spec.seed, identity, k])
            photos.append(Photo(identity, splits[identity], sample_photo_attributes(person, rng), sample_view(rng)))
    shuffle = np.random.default_rng([spec.seed, 2]).permutation(len(photos))
    order = sorted(range(len(photos)), key=lambda i: (SPLIT_NAMES.index(photos[i].split), shuffle[i]))
    return {f"{number:06d}.jpg": photos[i] for number, i in enumerate(order, start=1)}


def _write_images(path: Path, people: Mapping[int, Person], photos: Mapping[str, Photo]) -> None:
    """The JPEGs, in file-name order, with fixed zip timestamps: the same spec gives the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for image_id, photo in photos.items():
            info = zipfile.ZipInfo(f"{IMAGES_DIR}/{image_id}", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            buffer = io.BytesIO()
            render_face(people[photo.identity].traits, photo.attributes, photo.view).save(
                buffer, "JPEG", quality=JPEG_QUALITY
            )
            archive.writestr(info, buffer.getvalue())


def _write_annotations(folder: Path, photos: Mapping[str, Photo]) -> None:
    """The attribute, identity and partition files; the attributes that are not drawn are all -1."""
    index = pd.Index(list(photos), name="image_id")
    attributes = pd.DataFrame(0, index=index, columns=list(CELEBA_ATTRIBUTES), dtype="int8")
    for name in RENDERED_ATTRIBUTES:
        attributes[name] = [int(photo.attributes[name]) for photo in photos.values()]
    write_attributes(folder / ATTR_FILE, attributes)
    write_identities(folder / IDENTITY_FILE, pd.Series([photo.identity for photo in photos.values()], index=index))
    write_partition(folder / PARTITION_FILE, pd.Series([photo.split for photo in photos.values()], index=index))
