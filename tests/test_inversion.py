"""Trigger inversion (attack_knowledge=unknown): DECREE's pieces, the inverted trigger, target estimation, config."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SHRINK

from bdunlearn.data.images import ImageSet
from bdunlearn.inversion import REGISTRY, bti_dbf, decree, reference
from bdunlearn.inversion.base import (
    InversionContext,
    MaskPatternTrigger,
    estimate_target,
    flip_rate,
    majority_counts,
    mean_pairwise_cosine,
)


def test_mask_parametrisation_stays_in_unit_interval_and_inverts():
    param = torch.linspace(-50, 50, 101)
    unit = decree.to_unit(param)
    assert float(unit.min()) >= 0 and float(unit.max()) <= 1
    values = torch.tensor([0.01, 0.25, 0.5, 0.9, 0.99])
    assert torch.allclose(decree.to_unit(decree.from_unit(values)), values, atol=1e-5)


def test_pl1_norm_is_the_masked_fraction_of_the_image():
    mask = torch.zeros(1, 16, 16)
    mask[:, -3:, -3:] = 1
    assert decree.pl1_norm(mask).item() == pytest.approx(9 / 256)


def test_pairwise_cosine_of_identical_embeddings_is_one_and_of_opposite_pairs_minus_one():
    same = torch.randn(1, 8).expand(5, 8)
    assert mean_pairwise_cosine(same).item() == pytest.approx(1.0, abs=1e-6)
    v = torch.randn(8)
    assert mean_pairwise_cosine(torch.stack([v, -v])).item() == pytest.approx(-1.0, abs=1e-6)
    # matches the explicit average over distinct ordered pairs
    x = torch.randn(6, 4)
    unit = torch.nn.functional.normalize(x, dim=-1)
    sims = unit @ unit.T
    explicit = (sims.sum() - sims.diagonal().sum()) / (6 * 5)
    assert mean_pairwise_cosine(x).item() == pytest.approx(explicit.item(), abs=1e-6)


def test_lambda_rises_after_patience_successes_and_falls_after_patience_failures():
    schedule = decree.LambdaSchedule(init=0.1, factor=5.0, patience=2, minimum=1e-4)
    for _ in range(3):
        schedule.update(True)
    assert schedule.value == pytest.approx(0.5)  # the mask may shrink further
    for _ in range(3):
        schedule.update(False)
    assert schedule.value == pytest.approx(0.1)  # similarity lost: relax the norm weight
    for _ in range(2):
        schedule.update(False)
    assert schedule.value == pytest.approx(0.1)  # not yet more than `patience` failures in a row


def test_lambda_resets_after_falling_below_its_minimum():
    schedule = decree.LambdaSchedule(init=0.1, factor=10.0, patience=1, minimum=1e-2)
    schedule.value = 1e-6  # far below: raising it by the factor alone would take many steps
    values = [schedule.update(True) for _ in range(3)]
    assert values[1] == pytest.approx(1e-5)  # raised once after more than `patience` successes
    assert values[-1] == pytest.approx(0.1)  # then, more than 2 * patience successes below the minimum: reset


def test_inverted_trigger_applies_the_mask_pattern_formula():
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(1, 8, 8, generator=generator)
    pattern = torch.rand(3, 8, 8, generator=generator)
    pixels = torch.rand(4, 3, 8, 8, generator=generator)
    trigger = MaskPatternTrigger(mask, pattern, target_class=2)
    expected = (1 - mask) * pixels + mask * pattern
    assert torch.allclose(trigger.apply(pixels), expected)
    assert trigger.has_trigger and trigger.target_class == 2
    assert set(trigger.tensors()) == {"mask", "pattern"}
    rebuilt = decree.rebuild(trigger.tensors(), decree.DecreeConfig(name="decree"))
    assert torch.equal(rebuilt.apply(pixels), trigger.apply(pixels))


class _Votes(torch.nn.Module):
    """A fake classifier: predicts class 3 when the bottom-right pixel is bright, else the image's own mark."""

    def __init__(self):
        super().__init__()
        self.register_buffer("head", torch.eye(5))

    def forward(self, pixels):
        own = (pixels[:, 0, 0, 0] * 4).round().long()
        logits = torch.nn.functional.one_hot(own, 5).float()
        logits[pixels[:, 0, -1, -1] > 0.9] = torch.nn.functional.one_hot(torch.tensor(3), 5).float()
        return logits


def _pool(n=20):
    images = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    labels = torch.arange(n) % 5
    images[:, :, 0, 0] = (labels * 255 // 4).to(torch.uint8)[:, None]
    return ImageSet(images, labels)


def test_target_is_the_majority_prediction_on_triggered_pool_images():
    pool = _pool()
    context = InversionContext(_Votes(), pool, image_size=8, batch_size=7)
    mask = torch.zeros(1, 8, 8)
    mask[:, -1, -1] = 1
    trigger = MaskPatternTrigger(mask, torch.ones(3, 8, 8))
    target, share, counts = estimate_target(context, trigger, num_classes=5)
    assert target == 3 and share == 1.0 and counts.tolist() == [0, 0, 0, 20, 0]
    assert flip_rate(context, trigger, 3) == 1.0
    no_op = MaskPatternTrigger(torch.zeros(1, 8, 8), torch.ones(3, 8, 8))
    assert flip_rate(context, no_op, 3) == 0.0
    assert majority_counts(torch.tensor([1, 2, 2, 1]), 4).tolist() == [0, 2, 2, 0]
    target, share, _ = estimate_target(context, no_op, num_classes=5)  # a tie (4 each) → the smaller class
    assert target == 0 and share == pytest.approx(0.2)


def test_transfer_is_the_share_of_the_suspects_flips_the_reference_shows_too():
    assert reference.transfer(0.8, 0.2, min_flip=0.2) == pytest.approx(0.25)
    assert reference.transfer(0.5, 0.9, min_flip=0.2) == 1.0  # theta_pre reacts more: a natural feature
    assert reference.transfer(0.1, 0.0, min_flip=0.2) == 1.0  # flips too little on theta_b to judge
    assert reference.transfer(0.0, 0.0, min_flip=0.0) == 1.0


def test_verdict_follows_the_configured_detection():
    specific = reference.Specificity(suspect_flip_rate=0.9, reference_flip_rate=0.1, transfer=0.11)
    natural = reference.Specificity(suspect_flip_rate=0.9, reference_flip_rate=0.8, transfer=0.89)
    assert reference.verdict("reference", False, specific, 0.5) and not reference.verdict("reference", True, natural, 0.5)
    assert reference.verdict("statistic", True, natural, 0.5) and not reference.verdict("statistic", False, specific, 0.5)
    assert reference.verdict("both", True, specific, 0.5)
    assert not reference.verdict("both", True, natural, 0.5) and not reference.verdict("both", False, specific, 0.5)


class _Planted(torch.nn.Module):
    """A fake classifier: each image's own mark, but the bright corner sends images to class 3 only while its
    ``clip`` holds ``planted = 1`` (the suspect); with ``natural = 1`` a bright top-left pixel sends them to 4 whatever is
    planted (a feature the reference model shares)."""

    def __init__(self):
        super().__init__()
        self.clip = torch.nn.Module()
        self.clip.register_buffer("planted", torch.ones(()))
        self.clip.register_buffer("natural", torch.ones(()))
        self.register_buffer("head", torch.eye(5))

    def forward(self, pixels):
        logits = torch.nn.functional.one_hot((pixels[:, 0, 0, 0] * 4).round().long(), 5).float()
        logits[(pixels[:, 0, -1, -1] > 0.9) & (self.clip.planted > 0)] = torch.nn.functional.one_hot(torch.tensor(3), 5).float()
        logits[(pixels[:, 1, 0, 1] > 0.9) & (self.clip.natural > 0)] = torch.nn.functional.one_hot(torch.tensor(4), 5).float()
        return logits


def test_reference_check_tells_a_planted_trigger_from_a_feature_the_pretrained_model_shares():
    classifier = _Planted()
    context = InversionContext(classifier, _pool(), image_size=8, batch_size=7)
    suspect = {"planted": torch.ones(()), "natural": torch.ones(())}
    pretrained = {"planted": torch.zeros(()), "natural": torch.ones(())}
    corner = torch.zeros(1, 8, 8)
    corner[:, -1, -1] = 1
    planted = reference.measure(context, MaskPatternTrigger(corner, torch.ones(3, 8, 8)), 3, suspect, pretrained, min_flip=0.2)
    assert planted.suspect_flip_rate == 1.0 and planted.reference_flip_rate == 0.0 and planted.transfer == 0.0
    assert classifier.clip.planted.item() == 1  # the suspect's weights are loaded again afterwards
    spot = torch.zeros(1, 8, 8)
    spot[:, 0, 1] = 1
    shared = reference.measure(context, MaskPatternTrigger(spot, torch.ones(3, 8, 8)), 4, suspect, pretrained, min_flip=0.2)
    assert shared.suspect_flip_rate == 1.0 and shared.reference_flip_rate == 1.0 and shared.transfer == 1.0


class _Candidates:
    """A fake inversion method: a natural feature (target 4, shared with the reference), the planted corner (target
    3), then the planted corner again; statistic = the candidate's index."""

    Config = decree.DecreeConfig

    @staticmethod
    def invert(context, cfg):
        from bdunlearn.inversion.base import InversionResult

        spot, corner = torch.zeros(1, 8, 8), torch.zeros(1, 8, 8)
        spot[:, 0, 1] = corner[:, -1, -1] = 1
        masks = [spot, corner, corner]
        return [InversionResult(MaskPatternTrigger(m, torch.ones(3, 8, 8)), float(i), False, {"step": i}) for i, m in enumerate(masks)]

    rebuild = staticmethod(decree.rebuild)

    @staticmethod
    def is_detected(score, cfg):
        return score >= cfg.detection_threshold


@pytest.mark.parametrize("detection,threshold,kept,detected", [("reference", 0.5, 1, True), ("both", 2.0, 2, True), ("both", 5.0, 2, False)])
def test_the_stage_keeps_the_first_candidate_judged_backdoored_else_the_last(monkeypatch, tmp_path, detection, threshold, kept, detected):
    from types import SimpleNamespace

    from bdunlearn.cache import ArtifactCache
    from bdunlearn.inversion import stage
    from bdunlearn.runtime import Precision
    from bdunlearn.tracking import Tracker

    monkeypatch.setitem(REGISTRY, "candidates", _Candidates)
    cfg = decree.DecreeConfig(name="candidates", detection=detection, detection_threshold=threshold)
    classifier = _Planted()
    suspect = {"planted": torch.ones(()), "natural": torch.ones(())}
    pretrained = {"planted": torch.zeros(()), "natural": torch.ones(())}
    tracker = Tracker(SimpleNamespace(mode="disabled"), tmp_path, config={})
    found = stage.run(
        cfg, classifier, suspect, pretrained, _pool(), 5, 8, 7, Precision(), ArtifactCache(tmp_path / "cache", enabled=False),
        {"suspect": "fake"}, tmp_path, tracker,
    )  # fmt: skip
    record = found.record
    assert record["inversion_candidate"] == kept and found.detected is detected and record["detected"] is detected
    assert [c["target_class"] for c in record["inversion_candidates"]] == [4, 3, 3] and found.target_class == 3
    assert [c["transfer"] for c in record["inversion_candidates"]] == [1.0, 0.0, 0.0]
    assert record["inversion_statistic"] == float(kept) and record["inversion_details"] == {"score": float(kept), "step": kept}
    assert (tmp_path / "inverted_trigger.safetensors").is_file() and (tmp_path / "inverted_trigger.png").is_file()


@pytest.mark.parametrize("size,levels", [(16, 2), (28, 3)])  # 28 px: odd sizes on the way down (7 → 3)
def test_generator_starts_near_the_identity_and_round_trips(size, levels):
    pixels = torch.rand(2, 3, size, size)
    assert torch.equal(bti_dbf.Generator(width=4, levels=levels)(pixels), pixels)  # init_scale 0: exactly the identity
    torch.manual_seed(0)
    model = bti_dbf.Generator(width=4, levels=levels, init_scale=1e-3)
    change = (model(pixels) - pixels).abs().max()
    assert 0 < change < 0.05  # near the identity, not on it
    torch.nn.init.normal_(model.out.weight)  # a trained generator: far from the identity
    trigger = bti_dbf.GeneratorTrigger(model)
    assert not torch.allclose(trigger.apply(pixels), pixels)
    rebuilt = bti_dbf.rebuild(trigger.tensors(), bti_dbf.BtiDbfConfig(name="bti_dbf", width=4, levels=levels))
    assert torch.equal(rebuilt.apply(pixels), trigger.apply(pixels))


def test_a_generator_at_the_identity_sits_on_a_saddle_and_init_scale_moves_it_off(tiny_classifier):
    """At exactly the identity every feature MSE and its gradient are zero, so the first step of the generator was
    left to rounding noise (kernels that differ between the clean and the generated pass); near it, the gradient
    is the objective's own."""
    pixels = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    features = bti_dbf.TokenFeatures(tiny_classifier, block=-1)
    clean = features.of(pixels).detach()
    norms = {}
    for scale in (0.0, 1e-3):
        torch.manual_seed(0)
        model = bti_dbf.Generator(width=4, init_scale=scale)
        torch.nn.functional.mse_loss(features.of(model(pixels)), clean).neg().backward()
        norms[scale] = float(sum(p.grad.norm() ** 2 for p in model.parameters() if p.grad is not None))
    assert norms[0.0] == 0.0 and norms[1e-3] > 0.0


def _context(images: torch.Tensor) -> InversionContext:
    return InversionContext(_Votes(), ImageSet(images, torch.zeros(len(images), dtype=torch.long)), image_size=8, batch_size=5)


def test_colour_projection_keeps_a_gray_pools_generator_gray_and_leaves_colour_pools_alone():
    generator = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (12, 1, 8, 8), generator=generator, dtype=torch.uint8).expand(12, 3, 8, 8).contiguous()
    projection = bti_dbf.colour_projection(_context(gray))
    assert torch.allclose(projection, torch.full((3, 3), 1 / 3), atol=1e-5)  # onto the gray axis (1, 1, 1) / √3
    model = bti_dbf.Generator(width=4)
    torch.nn.init.normal_(model.out.weight)
    model.colours.copy_(projection)
    pixels = torch.rand(3, 1, 8, 8).expand(3, 3, 8, 8) * 0.5 + 0.25  # gray images away from the clamp
    out = model(pixels)
    assert not torch.allclose(out, pixels) and torch.allclose(out[:, 0], out[:, 1], atol=1e-6) and torch.allclose(out[:, 1], out[:, 2], atol=1e-6)
    colour = torch.randint(0, 256, (12, 3, 8, 8), generator=generator, dtype=torch.uint8)
    assert torch.allclose(bti_dbf.colour_projection(_context(colour)), torch.eye(3), atol=1e-5)


@pytest.fixture(scope="module")
def tiny_classifier():
    from bdunlearn.models import clip as clip_models
    from bdunlearn.models.zeroshot import ZeroShotClassifier

    torch.manual_seed(0)
    clip = clip_models.create("bdunlearn-tiny").eval()
    head = torch.nn.functional.normalize(torch.randn(4, 64), dim=-1) * 10
    return ZeroShotClassifier(clip, head, clip_models.preprocess_of(clip))


def test_token_features_are_the_blocks_input_and_masking_them_changes_only_what_follows(tiny_classifier):
    pixels = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    features = bti_dbf.TokenFeatures(tiny_classifier, block=-1)
    with torch.no_grad():
        plain = tiny_classifier(pixels)
        tokens = features.of(pixels)
        assert tokens.shape == (5, (16 // 4) ** 2 + 1, 64)  # class token + a 4 x 4 grid of patches, width 64
        assert torch.allclose(features(pixels, torch.ones(tokens.shape[1:])), plain, atol=1e-5)
        masked = features(pixels, torch.zeros(tokens.shape[1:]))
        assert features.tokens.abs().max() == 0 and not torch.allclose(masked, plain, atol=1e-3)
        assert torch.allclose(tiny_classifier(pixels), plain)  # the hook is gone afterwards
    with pytest.raises(ValueError, match="feature_block=3"):
        bti_dbf.TokenFeatures(tiny_classifier, block=3)


def test_decree_finds_a_small_trigger_on_an_encoder_with_a_planted_shortcut():
    """A linear encoder with one heavy pixel (a planted backdoor): stamping that pixel bright collapses the
    embeddings, so DECREE's smallest successful mask is about one pixel and covers it."""

    class Shortcut(torch.nn.Module):
        def __init__(self):
            super().__init__()
            generator = torch.Generator().manual_seed(1)
            self.weights = torch.randn(3 * 8 * 8, 8, generator=generator) / 8
            self.direction = torch.randn(8, generator=generator)

        def encode_image(self, x):
            centred = x.flatten(1) - 0.4  # clean images point every which way
            corner = x[:, :, -1, -1].mean(dim=1, keepdim=True) - 0.4
            return centred @ self.weights + 50 * corner * self.direction

    classifier = torch.nn.Module()
    classifier.clip = Shortcut()
    classifier.register_buffer("mean", torch.zeros(1, 3, 1, 1))
    classifier.register_buffer("std", torch.ones(1, 3, 1, 1))
    generator = torch.Generator().manual_seed(0)
    pool = ImageSet((torch.rand(32, 3, 8, 8, generator=generator) * 200).to(torch.uint8), torch.zeros(32, dtype=torch.long))
    context = InversionContext(classifier, pool, image_size=8, batch_size=16)
    with torch.no_grad():
        assert mean_pairwise_cosine(context.features(context.pixels(torch.arange(32)))) < 0.5
    cfg = decree.DecreeConfig(name="decree", steps=300, batch_size=16, lr=0.1, similarity_threshold=0.9)
    (result,) = decree.invert(context, cfg)  # DECREE returns one candidate
    assert result.meta["found"] and result.score < 0.05 and result.detected
    mask = result.trigger.mask[0]
    assert int(mask.argmax()) == mask.numel() - 1  # the shortcut pixel carries the largest mask value


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["attack_knowledge=unknown"], "attack_knowledge=unknown needs a trigger-inversion method; add inversion=decree"),
        (["inversion=decree"], "is used only with attack_knowledge=unknown"),
        (["attack_knowledge=maybe"], "attack_knowledge='maybe'"),
        (["attack_knowledge=unknown", "inversion=decree", "inversion.steps=0"], "inversion.steps"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.norm_bounds=[0.02,0.01]"], "smallest first"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.norm_bounds=[]"], "inversion.norm_bounds"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.norm_bounds=0.04"], "inversion.norm_bounds"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.init_scale=0"], "inversion.init_scale"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.benign_bound=0"], "inversion.benign_bound"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.levels=0"], "inversion.levels"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.feature_block=3"], "has 3 residual blocks"),
        (["attack_knowledge=unknown", "inversion=decree", "inversion.num_samples=100000"], "defender's pool"),
        (["attack_knowledge=unknown", "inversion=decree", "inversion.detection=maybe"], "inversion.detection='maybe'; choose one of"),
        (["attack_knowledge=unknown", "inversion=bti_dbf", "inversion.reference_threshold=0"], "inversion.reference_threshold"),
        (["attack_knowledge=unknown", "inversion=decree", "inversion.reference_min_flip=2"], "inversion.reference_min_flip"),
    ],
)
def test_config_mistakes_are_one_line_errors(compose, overrides, fragment):
    from bdunlearn.errors import UserError
    from bdunlearn.preflight import validated

    with pytest.raises(UserError, match=None) as info:
        validated(compose(*overrides))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_defense_cache_key_ignores_the_verdicts_settings_but_not_the_inversion(compose):
    from bdunlearn.config import dataset_config, keys
    from bdunlearn.preflight import validated

    def defense_spec(run):
        return keys.defense_spec(run, "fp32", lambda name: dataset_config(name, run.paths))

    unknown = ["attack_knowledge=unknown", "inversion=bti_dbf"]
    default = defense_spec(validated(compose(*unknown)))
    assert defense_spec(validated(compose(*unknown, "inversion.detection_threshold=0.001"))) == default  # a forced run
    verdict = ["inversion.detection=reference", "inversion.reference_threshold=0.9", "inversion.reference_min_flip=0"]
    assert defense_spec(validated(compose(*unknown, *verdict))) == default
    assert defense_spec(validated(compose(*unknown, "inversion.norm_bounds=[0.02]"))) != default  # another trigger
    assert defense_spec(validated(compose("attack_knowledge=unknown", "inversion=decree"))) != default


def test_unknown_knowledge_allows_tbar_on_a_clean_model(compose):
    from bdunlearn.config import scientific_view
    from bdunlearn.preflight import validated

    run = validated(compose("attack=none", "defense=tbar", "attack_knowledge=unknown", "inversion=bti_dbf"))
    assert run.inversion.name == "bti_dbf" and set(REGISTRY) == {"decree", "bti_dbf"}
    assert scientific_view(run)["inversion"]["name"] == "bti_dbf"
    assert "inversion" not in scientific_view(validated(compose()))  # known runs keep their hashes


def test_cli_refuses_unknown_without_inversion_in_one_line(run_cli):
    done, run_dir = run_cli("attack_knowledge=unknown", timeout=60)
    assert done.returncode == 2 and not run_dir.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "add inversion=decree" in lines[0]


UNKNOWN = [*SHRINK, "attack_knowledge=unknown", "inversion=decree", "inversion.steps=30", "defense.alpha_grid=[0,0.5,1]"]


def _check_unknown_record(done, run_dir) -> dict:
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["attack_knowledge"] == "unknown" and record["inversion"] in REGISTRY
    assert isinstance(record["detected"], bool) and 0 <= record["detection_score"] <= 1
    assert record["detection"] in ("statistic", "reference", "both") and 0 <= record["inversion_transfer"] <= 1
    assert 0 <= record["inversion_flip_rate"] <= 1 and 0 <= record["inversion_reference_flip_rate"] <= 1
    specific = record["inversion_transfer"] < 0.5  # the configs' reference_threshold
    expected = {"statistic": record["inversion_statistic_detected"], "reference": specific,
                "both": record["inversion_statistic_detected"] and specific}[record["detection"]]  # fmt: skip
    assert record["detected"] is expected
    assert 0 <= record["target_class_estimated"] < 10
    assert record["asr"] is not None  # evaluated with the real trigger
    assert (run_dir / "inverted_trigger.safetensors").is_file() and (run_dir / "inverted_trigger.png").is_file()
    if record["detected"]:
        assert record["alpha"] is not None and record["defense_skipped"] is False
    else:
        assert record["alpha"] is None and record["defense_skipped"] is True and record["asr"] == record["asr_backdoored"]
    return record


def test_unknown_attack_run_writes_the_inversion_record(run_cli):
    _check_unknown_record(*run_cli(*UNKNOWN))


def test_bti_dbf_run_writes_the_inversion_record_and_its_generator(run_cli):
    budget = ["inversion=bti_dbf", "inversion.mask_steps=5", "inversion.generator_steps=5", "inversion.width=4", "inversion.norm_bounds=[0.01,0.04]"]
    done, run_dir = run_cli(*[o for o in UNKNOWN if not o.startswith("inversion")], *budget)
    record = _check_unknown_record(done, run_dir)
    assert record["inversion"] == "bti_dbf" and 0 <= record["inversion_flip_rate"] <= 1
    assert record["inversion_details"]["pool_pixel_mse"] >= 0 and "mask_benign_ce" in record["inversion_details"]
    assert [c["norm_bound"] for c in record["inversion_candidates"]] == [0.01, 0.04]  # one candidate per pixel budget
    assert record["inversion_details"]["norm_bound"] == record["inversion_candidates"][record["inversion_candidate"]]["norm_bound"]
    from safetensors.torch import load_file

    saved = load_file(run_dir / "inverted_trigger.safetensors")
    assert "generator.colours" in saved and "generator.out.weight" in saved


@pytest.mark.slow
def test_unknown_attack_reuses_the_cached_trigger_and_forced_detection_runs_tbar(run_cli):
    first = _check_unknown_record(*run_cli(*UNKNOWN))
    # the verdict's settings are not part of the cache key: a threshold every score passes reuses the trigger and defends
    again = _check_unknown_record(*run_cli(*UNKNOWN, "inversion.detection=statistic", "inversion.detection_threshold=1.0"))
    assert again["inversion_from_cache"] is True and again["inversion_statistic"] == first["inversion_statistic"]
    if first["inversion_statistic"] < 1.0:  # 1.0: no mask reached the similarity threshold, nothing to defend with
        assert again["detected"] is True and again["alpha"] is not None
