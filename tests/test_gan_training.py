"""The GAN training loop: seeded runs repeat exactly, a resumed run equals an uninterrupted one, outputs are
complete."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from facegen.config import GanConfig
from facegen.gan.loss import flip_one, identity_loss
from facegen.io import UnsafeOutputError
from facegen.gan.training_loop import METRICS, GanTrainer, resumable, train_gan
from facegen.paths import GAN_CHECKPOINT_NAME
from tests.support.synthetic import tiny_gan

ATTRIBUTES = ("Eyeglasses", "Smiling")


@pytest.fixture(scope="module")
def faces(shared_faces64: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """48 real 32x32 faces64 crops with random-but-fixed attribute labels (the loop's mechanics, not quality)."""
    photos = sorted(shared_faces64.rglob("*.jpg"))[:48]
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32))) for p in photos])
    attributes = torch.randint(0, 2, (48, len(ATTRIBUTES)), generator=torch.Generator().manual_seed(0)).float()
    return torch.from_numpy(images), attributes


def _config(**changes) -> GanConfig:
    """The tiny generator, narrower still, over 6 steps with a checkpoint every 3 (resume tests stop between)."""
    base = dict(base_channels=4, editor_channels=4, batch_size=8, steps=6, sample_every=3, checkpoint_every=3, seed=7)
    return tiny_gan(**(base | {"attributes": ATTRIBUTES} | changes))


def _weights(trainer: GanTrainer) -> list[torch.Tensor]:
    """Every network's weights and buffers (G, D, E and the EMA copies) and the optimizers' moments."""
    nets = [t for m in trainer.nets.values() for t in m.state_dict().values()]
    moments = [t for o in trainer.optimizers.values() for s in o.state_dict()["state"].values() for t in s.values()]
    return [t.detach().clone() for t in nets + moments]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# The editor runs once (hinge): the other adversarial losses change only how its loss is scored.
@pytest.mark.parametrize(
    "changes",
    [dict(loss="hinge"), dict(loss="wgan-gp", editor=False), dict(loss="bce", editor=False), dict(model="cvae")],
    ids=str,
)
def test_seeded_runs_repeat_exactly_and_write_their_outputs(faces, tmp_path: Path, changes: dict) -> None:
    runs = []
    for name in ("a", "b"):
        trainer = GanTrainer(_config(**changes), *faces, tmp_path / name)
        trainer.run()
        runs.append(_weights(trainer))
    assert _same(*runs)
    assert sorted(trainer.nets) == (
        ["D", "G", "G_ema"]
        if changes.get("editor") is False
        else ["D", "E", "E_ema", "G", "G_ema"]
        if "model" not in changes
        else ["D", "G", "G_ema"]
    )
    other = GanTrainer(_config(**changes, seed=8), *faces, tmp_path / "c")
    other.run()
    assert not _same(runs[0], _weights(other))
    out = tmp_path / "a"
    strips = [] if changes.get("editor") is False else ["edits_000003.png", "edits_000006.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [GAN_CHECKPOINT_NAME, *strips, "grid_000003.png", "grid_000006.png", METRICS]
    )
    rows = list(csv.DictReader(open(out / METRICS)))
    assert [int(r["step"]) for r in rows] == [3, 6] and all(np.isfinite(float(r["d_loss"])) for r in rows)
    grid = Image.open(out / "grid_000006.png")
    assert grid.size == (2 + 8 * 34, 2 + 3 * 34)  # 8 columns of z x (none + one row per attribute), 2 px padding
    if strips:
        strip = np.asarray(Image.open(out / strips[-1]))
        assert strip.shape == (2 + 8 * 34, 2 + 3 * 34, 3)  # 8 sources x (source + one edit per attribute)
        sources = faces[0][trainer.strip_index].numpy()
        assert np.array_equal(strip[2:34, 2:34], sources[0])  # column 0 is the untouched source photo


@pytest.mark.parametrize("model", ["cgan", "cvae"])
def test_resumed_run_equals_an_uninterrupted_one(faces, tmp_path: Path, model: str) -> None:
    straight = GanTrainer(_config(model=model, sample_every=1), *faces, tmp_path / "straight")
    straight.run()

    first = GanTrainer(_config(model=model, sample_every=1, steps=3), *faces, tmp_path / "resumed")
    first.run()  # a checkpoint at step 3
    first._log_metrics(first.train_step(first.sample_batch()))  # step 4 logged, then killed before a checkpoint
    second = GanTrainer(_config(model=model, sample_every=1), *faces, tmp_path / "resumed")
    second.load_checkpoint(tmp_path / "resumed" / GAN_CHECKPOINT_NAME)
    assert second.step == 3
    second.run()
    assert second.step == 6 and _same(_weights(straight), _weights(second))
    assert (tmp_path / "resumed" / METRICS).read_text() == (tmp_path / "straight" / METRICS).read_text()


def test_a_longer_run_continues_another_runs_checkpoint_exactly(faces, tmp_path: Path) -> None:
    """gan.start_from: a 6-step run continuing a 3-step run's folder ends where a 6-step run from scratch does
    (weights, metrics from step 1), and leaves that folder as it was; a mismatch is named, never trained over."""
    images, attributes = faces
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    np.save(prepared / "images.npy", images.numpy())
    rows = pd.DataFrame(attributes.numpy().astype(int), columns=list(ATTRIBUTES))
    rows.assign(image_id=[f"{i}.jpg" for i in range(len(rows))], identity="p", split="train").to_parquet(
        prepared / "annotations.parquet"
    )
    (prepared / "meta.json").write_text("{}")
    train_gan(_config(steps=3, out=tmp_path / "short"), prepared)
    before = (tmp_path / "short" / GAN_CHECKPOINT_NAME).read_bytes()
    report = train_gan(_config(out=tmp_path / "long", start_from=tmp_path / "short"), prepared)
    straight = train_gan(_config(out=tmp_path / "straight"), prepared)
    assert report.resumed_from == 3 and report.steps == straight.steps == 6
    long, whole = (torch.load(tmp_path / n / GAN_CHECKPOINT_NAME, weights_only=True) for n in ("long", "straight"))
    assert all(torch.equal(long["G"][k], whole["G"][k]) for k in whole["G"]) and long["step"] == 6
    assert all(torch.equal(long["E_ema"][k], whole["E_ema"][k]) for k in whole["E_ema"])
    assert (tmp_path / "long" / METRICS).read_text() == (tmp_path / "straight" / METRICS).read_text()
    assert (tmp_path / "short" / GAN_CHECKPOINT_NAME).read_bytes() == before
    kept = (tmp_path / "long" / GAN_CHECKPOINT_NAME).read_bytes()
    with pytest.raises(ValueError, match="short.checkpoint.pt was trained with other settings \\(editor_mask\\)"):
        train_gan(_config(editor_mask=True, out=tmp_path / "long", start_from=tmp_path / "short"), prepared)
    assert (tmp_path / "long" / GAN_CHECKPOINT_NAME).read_bytes() == kept  # refused before anything was replaced
    with pytest.raises(ValueError, match="is at step 3, past gan.steps 2"):
        train_gan(_config(steps=2, out=tmp_path / "shorter", start_from=tmp_path / "short"), prepared)
    with pytest.raises(FileNotFoundError, match="gan.start_from: .*missing.checkpoint.pt does not exist"):
        train_gan(_config(out=tmp_path / "none", start_from=tmp_path / "missing"), prepared)
    with pytest.raises(UnsafeOutputError, match="gan.out .*short.inner overlaps the input .*short"):
        train_gan(_config(out=tmp_path / "short" / "inner", start_from=tmp_path / "short"), prepared)
    assert (tmp_path / "short" / GAN_CHECKPOINT_NAME).read_bytes() == before


def test_editor_targets_flip_exactly_one_attribute() -> None:
    source = torch.randint(0, 2, (200, 4), generator=torch.Generator().manual_seed(0)).float()
    target = flip_one(source, torch.Generator().manual_seed(1))
    assert (target != source).sum(dim=1).tolist() == [1] * 200
    assert set((target != source).float().argmax(dim=1).tolist()) == {0, 1, 2, 3}


def test_attribute_losses_weigh_positives_by_their_rarity(faces, tmp_path: Path) -> None:
    images, attributes = faces
    rows = attributes.clone()
    rows[:, 0] = (torch.arange(len(rows)) < 6).float()  # 6 of 48 wear glasses: negatives/positives = 7
    balanced = GanTrainer(_config(), images, rows, tmp_path / "balanced")
    expected = (1 - rows.mean(0)) / rows.mean(0)
    assert torch.allclose(balanced.positive_weight, expected) and balanced.positive_weight[0].item() == pytest.approx(7)
    assert GanTrainer(_config(balance_attributes=False), images, rows, tmp_path / "plain").positive_weight is None


def test_flip_term_trains_the_editor_only(faces, tmp_path: Path) -> None:
    # gan.lambda_flip adds an attribute loss on the edits' flipped attribute: one step with it moves the editor
    # differently and leaves the generator's step exactly as it was.
    steps = {flip: GanTrainer(_config(lambda_flip=flip), *faces, tmp_path / str(flip)) for flip in (0.0, 3.0)}
    for trainer in steps.values():
        trainer.train_step(trainer.sample_batch())
    plain, flipped = (
        {name: [p.detach().clone() for p in t.nets[name].parameters()] for name in ("G", "E")} for t in steps.values()
    )
    assert _same(plain["G"], flipped["G"]) and not _same(plain["E"], flipped["E"])


def test_identity_term_off_skips_the_identity_pass(faces, tmp_path: Path) -> None:
    # The editor runs on the batch (edits), then on its edits (cycle) plus, for gan.lambda_id > 0, on the real
    # faces under their own attributes (identity). lambda_id 0 leaves that third of its work out.
    sizes, weights = {}, {}
    for lambda_id in (1.0, 0.0):
        trainer = GanTrainer(_config(lambda_id=lambda_id), *faces, tmp_path / str(lambda_id))
        trainer.nets["E"].register_forward_pre_hook(
            lambda m, inputs, k=lambda_id: sizes.setdefault(k, []).append(len(inputs[0]))
        )
        trainer.train_step(trainer.sample_batch())
        weights[lambda_id] = [p.detach().clone() for p in trainer.nets["E"].parameters()]
    batch = _config().batch_size
    assert sizes == {1.0: [batch, 2 * batch], 0.0: [batch, batch]}
    assert not _same(weights[1.0], weights[0.0])


def test_mode_seeking_pairs_samples_and_moves_the_generator(faces, tmp_path: Path) -> None:
    # gan.lambda_ms asks for samples half + i with sample i's attributes (and other z), and pushes them apart.
    # gan.ms_downsample compares the pair pooled: a different push, so a different step.
    requested = {}
    for ms, pool in ((0.0, 1), (1.0, 1), (1.0, 4)):
        trainer = GanTrainer(_config(lambda_ms=ms, ms_downsample=pool), *faces, tmp_path / f"{ms}-{pool}")

        def record(module, inputs, ms=ms) -> None:
            requested.setdefault(ms, inputs[1].clone())

        trainer.nets["G"].register_forward_pre_hook(record)
        trainer.train_step(trainer.sample_batch())
        requested[f"G {ms} {pool}"] = [p.detach().clone() for p in trainer.nets["G"].parameters()]
    half = len(requested[1.0]) // 2
    assert torch.equal(requested[1.0][:half], requested[1.0][half:])
    assert not torch.equal(requested[0.0][:half], requested[0.0][half:])
    assert not _same(requested["G 0.0 1"], requested["G 1.0 1"])
    assert not _same(requested["G 1.0 1"], requested["G 1.0 4"])


def test_discriminator_learns_attributes_from_real_faces_only_by_lambda_cls_real(faces, tmp_path: Path) -> None:
    # D's attribute head is trained on real faces alone, weighted by gan.lambda_cls_real: at 0 it does not move.
    heads = {}
    for weight in (0.0, 1.0):
        trainer = GanTrainer(_config(lambda_cls_real=weight), *faces, tmp_path / str(weight))
        before = [p.detach().clone() for p in trainer.nets["D"].classify.parameters()]
        trainer.train_step(trainer.sample_batch())
        heads[weight] = _same(before, [p.detach() for p in trainer.nets["D"].classify.parameters()])
    assert heads == {0.0: True, 1.0: False}


def test_checkpoint_loads_with_weights_only_and_checks_attributes(faces, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(steps=3), *faces, tmp_path / "run")
    trainer.run()
    state = torch.load(tmp_path / "run" / GAN_CHECKPOINT_NAME, weights_only=True)
    assert state["step"] == 3 and state["config"]["attributes"] == list(ATTRIBUTES)
    swapped = GanTrainer(_config(attributes=ATTRIBUTES[::-1]), *faces, tmp_path / "other")
    with pytest.raises(ValueError, match=r"trained with attributes \['Eyeglasses', 'Smiling'\], not gan.attributes"):
        swapped.load_checkpoint(tmp_path / "run" / GAN_CHECKPOINT_NAME)


def test_bad_inputs_are_named(faces, tmp_path: Path) -> None:
    images, attributes = faces
    with pytest.raises(ValueError, match="images must be N x R x R x 3 uint8"):
        GanTrainer(_config(), images.float(), attributes, tmp_path)
    with pytest.raises(ValueError, match=r"attributes must be 48 x 2 \(gan.attributes\), got \(48, 3\)"):
        GanTrainer(_config(), images, torch.zeros(48, 3), tmp_path)
    with pytest.raises(ValueError, match=r"gan.ms_downsample 3 must divide the \d+ px image size"):
        GanTrainer(_config(ms_downsample=3), images, attributes, tmp_path)


def test_ema_follows_the_generator_and_editor_from_the_start(faces, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(steps=3), *faces, tmp_path / "run")
    initial = {name: [p.detach().clone() for p in trainer.nets[f"{name}_ema"].parameters()] for name in ("G", "E")}
    trainer.run()
    for name, start in initial.items():
        moved = [
            (e - i).norm() / (g - i).norm().clamp_min(1e-12)
            for e, g, i in zip(trainer.nets[f"{name}_ema"].parameters(), trainer.nets[name].parameters(), start)
        ]
        assert min(moved) > 0.5, name  # with a fixed 0.999 decay the EMA would have moved ~0.3% of the way


class _Embedding(torch.nn.Module):
    """A small frozen 'face network' for the identity and feature terms: two conv maps (4 and 6 channels, as
    gan.feature_channels says below), then pooled through a fixed linear map into the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = torch.nn.Conv2d(3, 4, 3, 2, 1), torch.nn.Conv2d(4, 6, 3, 2, 1)
        self.linear = torch.nn.Linear(6 * 4 * 4, 16)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        first = torch.relu(self.first(images))
        second = torch.relu(self.second(first))
        return self.linear(torch.nn.functional.adaptive_avg_pool2d(second, 4).flatten(1)), [first, second]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)[0]


def test_identity_loss_is_zero_for_the_source_and_trains_only_the_edit() -> None:
    embed = _Embedding().requires_grad_(False)
    sources = torch.rand(6, 3, 32, 32) * 2 - 1
    assert identity_loss(embed(sources), embed(sources)).item() == pytest.approx(0, abs=1e-6)
    edits = (sources.flip(0) * 0.5).requires_grad_(True)
    loss = identity_loss(embed(edits), embed(sources))
    loss.backward()
    assert loss.item() > 0.01 and edits.grad.abs().sum() > 0
    assert all(p.grad is None for p in embed.parameters())


def test_identity_term_moves_the_editor_and_is_logged(faces, tmp_path: Path) -> None:
    # gan.lambda_identity adds 1 - cosine of the identity network's embeddings of edit and source: one step with
    # it moves the editor differently, leaves the generator's step as it was, and never trains the network.
    embed = _Embedding()
    before = [p.detach().clone() for p in embed.parameters()]
    trainers = {
        0.0: GanTrainer(_config(), *faces, tmp_path / "plain"),
        5.0: GanTrainer(_config(lambda_identity=5.0, identity_network="b.pt"), *faces, tmp_path / "id", identity=embed),
    }
    metrics = {k: t.train_step(t.sample_batch()) for k, t in trainers.items()}
    assert "e_identity_loss" in metrics[5.0] and "e_identity_loss" not in metrics[0.0]
    plain, kept = ({n: [p.detach().clone() for p in t.nets[n].parameters()] for n in "GE"} for t in trainers.values())
    assert _same(plain["G"], kept["G"]) and not _same(plain["E"], kept["E"])
    assert _same(before, [p.detach() for p in embed.parameters()])
    with pytest.raises(ValueError, match="identity network"):
        GanTrainer(_config(lambda_identity=5.0, identity_network="b.pt"), *faces, tmp_path / "none")


def test_masked_editor_trains_with_its_mask_kept_small(faces, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(editor_mask=True, lambda_mask=1.0), *faces, tmp_path / "masked")
    first = trainer.train_step(trainer.sample_batch())
    assert 0.05 < first["e_mask_mean"] < 0.2  # it starts mostly closed: near the identity
    trainer.run()
    assert (tmp_path / "masked" / GAN_CHECKPOINT_NAME).is_file()


def _resumed_run_equals_uninterrupted(config: GanConfig, faces, tmp_path: Path, identity=None) -> bool:
    """Whether ``config`` stopped at step 3 and resumed from its checkpoint ends with every weight and optimizer
    moment of the run that went straight through."""
    straight = GanTrainer(config, *faces, tmp_path / "straight", identity=identity)
    straight.run()
    GanTrainer(config.model_copy(update={"steps": 3}), *faces, tmp_path / "resumed", identity=identity).run()
    second = GanTrainer(config, *faces, tmp_path / "resumed", identity=identity)
    second.load_checkpoint(tmp_path / "resumed" / GAN_CHECKPOINT_NAME)
    second.run()
    return _same(_weights(straight), _weights(second))


def test_region_discriminator_trains_on_the_bands_and_moves_only_the_editor(faces, tmp_path: Path) -> None:
    # gan.lambda_region: a patch discriminator R on the eye and mouth bands, updated with D; its term moves the
    # editor and leaves the generator's step exactly as it was; a resumed run equals an uninterrupted one.
    trainers = {w: GanTrainer(_config(lambda_region=w), *faces, tmp_path / str(w)) for w in (0.0, 2.0)}
    assert "R" not in trainers[0.0].nets and "opt_r" not in trainers[0.0].optimizers
    assert "R" in trainers[2.0].nets and "R_ema" not in trainers[2.0].nets
    region = trainers[2.0].nets["R"]
    before = [p.detach().clone() for p in region.parameters()]
    metrics = {w: t.train_step(t.sample_batch()) for w, t in trainers.items()}
    assert np.isfinite(metrics[2.0]["e_region_loss"]) and "e_region_loss" not in metrics[0.0]
    assert not _same(before, [p.detach() for p in region.parameters()])  # R learnt in the discriminator phase
    plain, judged = ({n: [p.detach().clone() for p in t.nets[n].parameters()] for n in "GE"} for t in trainers.values())
    assert _same(plain["G"], judged["G"]) and not _same(plain["E"], judged["E"])

    assert _resumed_run_equals_uninterrupted(_config(lambda_region=2.0), faces, tmp_path)
    with pytest.raises(ValueError, match="gan.lambda_region > 0 judges the editor's edits"):
        _config(lambda_region=1.0, editor=False)


def test_feature_discriminator_reads_the_face_networks_maps_and_moves_only_the_editor(faces, tmp_path: Path) -> None:
    # gan.lambda_feature: a discriminator P on the frozen face network's feature maps, updated with D; its term
    # moves the editor, leaves the generator's step and the face network as they were; a resumed run equals an
    # uninterrupted one; the face network is required.
    embed = _Embedding().requires_grad_(False)
    frozen = [p.detach().clone() for p in embed.parameters()]

    def config(**changes) -> GanConfig:
        return _config(**({"identity_network": "b.pt", "feature_channels": (4, 6)} | changes))

    trainers = {
        w: GanTrainer(config(lambda_feature=w, lambda_identity=1.0), *faces, tmp_path / str(w), identity=embed)
        for w in (0.0, 2.0)
    }
    assert "P" not in trainers[0.0].nets and "P" in trainers[2.0].nets and "P_ema" not in trainers[2.0].nets
    feature = trainers[2.0].nets["P"]
    before = [p.detach().clone() for p in feature.parameters()]
    metrics = {w: t.train_step(t.sample_batch()) for w, t in trainers.items()}
    assert np.isfinite(metrics[2.0]["e_feature_loss"]) and "e_feature_loss" not in metrics[0.0]
    assert metrics[2.0]["e_identity_loss"] == pytest.approx(metrics[0.0]["e_identity_loss"])  # same first edits
    assert not _same(before, [p.detach() for p in feature.parameters()])  # P learnt in the discriminator phase
    plain, judged = ({n: [p.detach().clone() for p in t.nets[n].parameters()] for n in "GE"} for t in trainers.values())
    assert _same(plain["G"], judged["G"]) and not _same(plain["E"], judged["E"])
    assert _same(frozen, [p.detach() for p in embed.parameters()])

    assert _resumed_run_equals_uninterrupted(config(lambda_feature=2.0), faces, tmp_path, embed)
    with pytest.raises(ValueError, match="identity network"):
        GanTrainer(config(lambda_feature=2.0), *faces, tmp_path / "none")
    with pytest.raises(ValueError, match="gan.lambda_feature > 0 needs gan.identity_network"):
        _config(lambda_feature=1.0)
    with pytest.raises(ValueError, match="gan.lambda_feature > 0 judges the editor's edits"):
        config(lambda_feature=1.0, editor=False)
    with pytest.raises(ValueError, match="feature_channels"):
        config(lambda_feature=1.0, feature_channels=())
    wrong = GanTrainer(config(lambda_feature=1.0, feature_channels=(4, 8)), *faces, tmp_path / "wrong", identity=embed)
    with pytest.raises(ValueError, match=r"maps of \(4, 6\) channels; gan.feature_channels says \(4, 8\)"):
        wrong.train_step(wrong.sample_batch())


def test_a_checkpoint_older_than_a_setting_resumes_when_the_setting_is_at_its_default(faces, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(steps=3), *faces, tmp_path / "old")
    trainer.run()
    saved = torch.load(tmp_path / "old" / GAN_CHECKPOINT_NAME, weights_only=True)["config"]
    newer_settings = ("editor_mask", "lambda_mask", "lambda_identity", "identity_network", "identity_input_size")
    for newer in (*newer_settings, "lambda_region", "lambda_feature", "feature_channels"):
        del saved[newer]  # as written before these settings existed
    assert resumable(saved, _config(steps=6))
    assert not resumable(saved, _config(steps=6, editor_mask=True))
