"""params.yaml -> typed config: the shipped file is valid; mistakes name the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegen.config import GAN_PROFILES, ParamsError, load_params
from tests.support.imports import ROOT as REPO


def test_shipped_params_are_valid_and_default_to_the_offline_demo() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "demo" and params.data.image_size == 32
    assert params.prepare.out == Path("data/prepared")


def test_overrides_use_dotted_names() -> None:
    params = load_params(REPO / "params.yaml", {"data.source": "local", "data.demo.identities": 5})
    assert params.data.source == "local" and params.data.demo.identities == 5


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data.image_size": 48}, r"data.image_size: Input should be 32, 64 or 128 \(got 48\)"),
        ({"data.sorce": "demo"}, r"data.sorce: Extra inputs are not permitted"),
        ({"data.source": "s3"}, r"data.source: Input should be 'demo', 'celeba', 'local' or 'folder'"),
        ({"prepare.workers": -1}, r"prepare.workers: Input should be greater than or equal to 0"),
        ({"gan.profile": "huge"}, r"gan.profile: Input should be 'demo', 'middle' or 'celeba64'"),
        ({"gan.model": "vae"}, r"gan.model: Input should be 'cgan' or 'cvae'"),
        ({"editing.confined": ["gan_regoin"]}, r"editing.confined: \['gan_regoin'\] are not generator sections"),
    ],
)
def test_bad_values_name_the_parameter(overrides: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        load_params(REPO / "params.yaml", overrides)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("data: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_gan_profile_presets_yield_to_explicit_values() -> None:
    demo = load_params(REPO / "params.yaml").gan
    assert demo.profile == "demo" and demo.base_channels == GAN_PROFILES["demo"]["base_channels"]
    middle = load_params(REPO / "params.yaml", {"gan.profile": "middle", "gan.steps": 7}).gan
    assert middle.base_channels == GAN_PROFILES["middle"]["base_channels"] and middle.steps == 7
    assert load_params(REPO / "params.yaml", {"gan.profile": "celeba64", "gan.base_channels": 8}).gan.base_channels == 8


def test_identity_term_needs_its_network(tmp_path) -> None:
    (tmp_path / "params.yaml").write_text("gan:\n  lambda_identity: 2.0\n")
    with pytest.raises(ParamsError, match="identity_network"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("gan:\n  lambda_identity: 2.0\n  identity_network: models/distilled.pt\n")
    assert load_params(tmp_path / "params.yaml").gan.identity_network.name == "distilled.pt"


def test_every_generator_section_is_an_output_a_training_and_an_editor_judged() -> None:
    # One table (facegen.config.GAN_SECTIONS): each section present in params is an output apart from the others,
    # train_gan writes its own metrics files, and evaluate_editors judges it under its own name.
    from facegen.config import GAN_SECTIONS
    from facegen.paths import train_gan_files
    from pipelines.evaluate_editors import EDITOR_NAMES, confined_editors, editors

    params = load_params(REPO / "studies" / "celeba64" / "params.yaml")
    assert list(params.gan_sections()) == list(GAN_SECTIONS)  # the study has every one
    assert {f"{s}.out" for s in GAN_SECTIONS} <= set(params.outputs())
    assert len({params.outputs()[f"{s}.out"] for s in GAN_SECTIONS}) == len(GAN_SECTIONS)
    files = [path for section in GAN_SECTIONS for path in train_gan_files(section)]
    assert len(set(files)) == len(files) and train_gan_files("gan_feature")[0].name == "train_gan_feature.json"
    assert set(EDITOR_NAMES) == set(GAN_SECTIONS)
    assert list(editors(params)) == ["baseline", "identity", "region", "long", "feature"]
    assert confined_editors(params) == ["identity", "region", "long", "feature"]  # judged confined too
    demo = load_params(REPO / "params.yaml")
    assert list(demo.gan_sections()) == ["gan"]
    with pytest.raises(ValueError, match="needs gan_baseline"):
        editors(demo)
    without = params.model_copy(update={"gan_feature": None})  # confined, but not in params
    with pytest.raises(ValueError, match=r"editing.confined names \['gan_feature'\], which params has no section"):
        editors(without)
