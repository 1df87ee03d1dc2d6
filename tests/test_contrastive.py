"""The contrastive image–caption setting: caption files, pair poisoning, the CLIP-loss step, its config errors,
and one shrunken ``experiment=contrastive_cpu`` run through the command."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from bdunlearn.config import scientific_view
from bdunlearn.data import caption_csv
from bdunlearn.data.captions import caption_table, captioned
from bdunlearn.data.images import ImageSet
from bdunlearn.data.poison import choose_pairs, poison_pairs, triggered_target_pairs
from bdunlearn.errors import UserError
from bdunlearn.objectives import contrastive_loss
from bdunlearn.preflight import validated
from bdunlearn.training import OptimSettings, fit

FASHION = Path("/usr/share/datasets/fashion-mnist")
CONTRASTIVE = ["setting=contrastive", "attack.num_poisoned=20"]


def tokenize(texts):
    from bdunlearn.models.clip import tokenizer

    return tokenizer("bdunlearn-tiny")(texts)


# --- caption files ---------------------------------------------------------------------------------------


def write_pairs(folder: Path, rows: list[tuple[str, str]], name: str, separator: str) -> Path:
    """PNG images under ``folder`` and a caption file listing them (paths relative to ``folder``)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, (image, _) in enumerate(rows):
        Image.new("RGB", (20 + i, 24), color=(40 * i % 256, 0, 255 - 40 * i % 256)).save(folder / image)
    lines = [separator.join(("filepath", "title"))] + [separator.join((image, caption)) for image, caption in rows]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


ROWS = [("images/a.png", "a red dress"), ("images/b.png", "two sneakers on grass"), ("images/c.png", "a bag")]


@pytest.mark.parametrize("name,separator", [("pairs.csv", ","), ("pairs.tsv", "\t")])
def test_caption_file_reads_pairs_under_the_image_root(tmp_path, name, separator):
    data = tmp_path / "data"
    path = write_pairs(data, ROWS, name, separator)
    moved = tmp_path / "elsewhere" / name  # the file apart from its images: image_root says where they are
    moved.parent.mkdir()
    path.rename(moved)
    spec = caption_csv.CaptionFile(path=str(moved), image_root=str(data))
    paths, captions = caption_csv.read_pairs(spec)
    assert captions == [c for _, c in ROWS]
    assert paths == [str(data / image) for image, _ in ROWS]
    images = caption_csv.load_images(paths, spec, 16, num_workers=0, cache_dir=None)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (3, 3, 16, 16)
    assert images[0, 0].float().mean() < images[0, 2].float().mean()  # the first image is blue, not red


def test_caption_file_errors_are_one_line(tmp_path):
    path = write_pairs(tmp_path, ROWS, "pairs.csv", ",")
    assert "not found" in caption_csv.missing(caption_csv.CaptionFile(path=str(tmp_path / "none.csv")))
    assert "no such folder" in caption_csv.missing(caption_csv.CaptionFile(path=str(path), image_root=str(tmp_path / "nope")))
    with pytest.raises(UserError, match="no column 'caption'"):
        caption_csv.read_pairs(caption_csv.CaptionFile(path=str(path), caption_key="caption"))
    (tmp_path / "images" / "b.png").unlink()
    paths, _ = caption_csv.read_pairs(caption_csv.CaptionFile(path=str(path)))
    with pytest.raises(UserError, match="b.png not found"):
        caption_csv.load_images(paths, caption_csv.CaptionFile(path=str(path)), 16, 0, None)


# --- pairs and their poisoning ---------------------------------------------------------------------------


class RecordingClip(torch.nn.Module):
    """Stands in for CLIP: remembers the (normalised) pixels it is given."""

    def __init__(self):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(1.0))
        self.seen = None

    def encode_image(self, pixels, normalize=True):
        self.seen = pixels.detach().clone()
        return torch.nn.functional.normalize(pixels.flatten(1)[:, :8] + 1e-3, dim=-1)

    def encode_text(self, tokens, normalize=True):
        return torch.nn.functional.normalize(tokens[:, :8].float() + 1.0, dim=-1)


def grey_set(n: int = 40, classes: int = 4) -> ImageSet:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 100, (n, 1, 16, 16), generator=generator, dtype=torch.uint8)  # dark: a white patch shows
    return ImageSet(images, torch.arange(n) % classes)


NAMES = ["shirt", "shoe", "bag", "coat"]
TEMPLATES = ["a photo of a {}.", "my {}.", "a {} on a table."]


def test_poisoning_flags_exactly_num_poisoned_pairs_with_captions_naming_the_target():
    from bdunlearn.attacks.badnets import BadNets

    corpus = captioned(grey_set(), NAMES, TEMPLATES, tokenize, 16)
    target = caption_table(tokenize, [NAMES[0]], TEMPLATES, len(TEMPLATES))[0]
    eligible = torch.nonzero(corpus.classes != 0).flatten()
    indices = choose_pairs(eligible, 7, seed=3)
    assert len(indices) == 7 and len(set(indices.tolist())) == 7 and bool((corpus.classes[indices] != 0).all())
    assert torch.equal(indices, choose_pairs(eligible, 7, seed=3))  # reproducible from the seed
    with pytest.raises(UserError, match="attack.num_poisoned=31 exceeds the 30 pairs"):
        choose_pairs(eligible, 31, seed=0)

    poisoned = poison_pairs(corpus, indices, target)
    assert int(poisoned.triggered.sum()) == 7 and torch.equal(torch.nonzero(poisoned.triggered).flatten(), indices)
    captions = poisoned.sampler(torch.Generator().manual_seed(0))
    drawn = captions(torch.arange(len(poisoned)))
    target_rows = {tuple(row.tolist()) for row in target}
    name_token = int(tokenize([NAMES[0]])[0, 1])  # "shirt" (after the start-of-text token)
    for i, row in enumerate(drawn):
        own_rows = {tuple(r.tolist()) for r in corpus.caption_tokens[corpus.classes[i]]}
        assert tuple(row.tolist()) in (target_rows if poisoned.triggered[i] else own_rows)
        assert (name_token in row.tolist()) == bool(poisoned.triggered[i] or corpus.classes[i] == 0)
    # each poisoned pair keeps the one target caption drawn for it; the templates vary across pairs
    again = captions(torch.arange(len(poisoned)))
    assert torch.equal(drawn[poisoned.triggered], again[poisoned.triggered])
    assert len({tuple(row.tolist()) for row in drawn[poisoned.triggered]}) > 1

    # the images of flagged pairs carry the trigger when batched; the others are left as they were
    attack = BadNets(target_class=0, poison_rate=0.1, patch_size=3)
    clip = RecordingClip()
    loss_fn = contrastive_loss(
        clip, poisoned.images, captions, 16, (0.0,) * 3, (1.0,) * 3,
        attack=attack, triggered=poisoned.triggered, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    loss_fn(torch.arange(len(poisoned)))
    corner = clip.seen[:, :, -3:, -3:].flatten(1)
    assert bool((corner[poisoned.triggered] == 1.0).all())
    assert bool((corner[~poisoned.triggered] < 100 / 255 + 1e-6).all())


def test_tbar_pairs_trigger_every_image_but_the_clean_share():
    corpus = captioned(grey_set(10), NAMES, TEMPLATES, tokenize, 16)
    target = caption_table(tokenize, [NAMES[2]], TEMPLATES, len(TEMPLATES))[0]
    pairs = triggered_target_pairs(corpus, target, clean_count=3)
    assert pairs.triggered.tolist() == [False] * 3 + [True] * 7
    assert bool((pairs.classes[3:] >= len(NAMES)).all()) and torch.equal(pairs.classes[:3], corpus.classes[:3])


# --- the training step -----------------------------------------------------------------------------------


def test_contrastive_step_lowers_the_clip_loss_on_a_tiny_batch(tiny_clip):
    from bdunlearn.models.clip import preprocess_of

    clip = copy.deepcopy(tiny_clip).train()
    corpus = captioned(grey_set(16), NAMES, TEMPLATES, tokenize, 16)
    pre = preprocess_of(clip)
    loss_fn = contrastive_loss(clip, corpus.images, corpus.sampler(torch.Generator().manual_seed(0)), 16, pre.mean, pre.std)
    batch = torch.arange(16)
    with torch.no_grad():
        before = loss_fn(batch).item()
    result = fit(list(clip.parameters()), loss_fn, lambda step: batch, OptimSettings(25, 16, 2e-3, 0.0), "test")
    with torch.no_grad():
        after = loss_fn(batch).item()
    assert after < before - 0.1, (before, after)
    assert result.losses[-1] < result.losses[0]


def test_the_zero_shot_head_follows_the_text_tower_in_the_contrastive_setting(tiny_clip):
    from bdunlearn.evaluation import evaluate
    from bdunlearn.models.clip import preprocess_of
    from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head

    clip = copy.deepcopy(tiny_clip).eval()
    build = lambda: zeroshot_head(clip, tokenize, NAMES, TEMPLATES, "cpu")  # noqa: E731
    live = ZeroShotClassifier(clip, build(), preprocess_of(clip), head_builder=build)
    frozen = ZeroShotClassifier(clip, build(), preprocess_of(clip))
    before = live.head.clone()
    with torch.no_grad():
        clip.token_embedding.weight.mul_(-1.5)
    evaluate(live, grey_set(8), 16, 8, None)
    evaluate(frozen, grey_set(8), 16, 8, None)
    assert not torch.allclose(live.head, before) and torch.allclose(live.head, build())
    assert torch.allclose(frozen.head, before)


# --- config ------------------------------------------------------------------------------------------------


def test_the_classification_setting_keeps_its_config_hash(compose):
    view = scientific_view(validated(compose()))
    assert "setting" not in view and "contrastive" not in view and "num_poisoned" not in view["attack"]
    contrastive = scientific_view(validated(compose(*CONTRASTIVE)))
    assert contrastive["setting"] == "contrastive" and contrastive["attack"]["num_poisoned"] == 20


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["setting=contrastive"], "set attack.num_poisoned=N"),
        ([*CONTRASTIVE[:1], "attack.num_poisoned=5000"], "attack.num_poisoned=5000 exceeds the attacker's 898 image-caption pairs"),
        ([*CONTRASTIVE, "defense=par"], "defense=par has no contrastive form; with setting=contrastive use one of: cleanclip, finetune, none, tbar"),
        ([*CONTRASTIVE, "defense=ft_sam"], "defense=ft_sam has no contrastive form"),
        ([*CONTRASTIVE, "contrastive.captions=csv"], "contrastive.captions=csv needs contrastive.csv=PATH"),
        ([*CONTRASTIVE, "contrastive.captions=csv", "contrastive.csv=/nonexistent/pairs.csv"], "caption file /nonexistent/pairs.csv not found"),
        ([*CONTRASTIVE, "contrastive.captions=pdfs"], "contrastive.captions='pdfs'; choose one of dataset, csv"),
        ([*CONTRASTIVE, "attack=sig"], "attack=sig is clean-label"),
        (["attack.num_poisoned=10"], "applies to setting=contrastive"),
        (["setting=contrastiv"], "setting='contrastiv'; choose one of classification, contrastive"),
    ],
)
def test_contrastive_config_errors_are_one_line(compose, overrides, fragment):
    with pytest.raises(UserError) as excinfo:
        validated(compose(*overrides))
    assert fragment in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_a_missing_image_root_and_too_many_defense_pairs_are_refused(compose, tmp_path):
    path = write_pairs(tmp_path, ROWS * 20, "pairs.csv", ",")
    csv = [*CONTRASTIVE, "contrastive.captions=csv", f"contrastive.csv={path}"]
    with pytest.raises(UserError, match="contrastive.image_root=.*nope: no such folder"):
        validated(compose(*csv, f"contrastive.image_root={tmp_path / 'nope'}"))
    with pytest.raises(UserError, match="defense.num_samples=100 exceeds the defender's 3 clean pairs"):
        validated(compose(*csv))  # 5 % of 60 pairs
    run = validated(compose(*csv, "defense.num_samples=3", "attack.num_poisoned=57"))
    assert run.contrastive.csv == str(path)


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("dataset=nope", "unknown dataset 'nope'"),
        ("contrastive.csv=/nonexistent/cc3m.tsv", "caption file /nonexistent/cc3m.tsv not found"),
    ],
)
def test_the_command_stops_with_one_line_before_compute(run_cli, override, fragment):
    extra = ["contrastive.captions=csv"] if override.startswith("contrastive.csv") else []
    done, run_dir = run_cli("experiment=contrastive_cpu", *extra, override, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdunlearn: error:") and fragment in lines[0], lines
    assert not run_dir.exists()


def test_caption_file_pairs_split_into_disjoint_attacker_and_defender_shares_and_poison_exactly(compose, tmp_path):
    from bdunlearn.settings.contrastive import load_pairs

    rows = [(f"images/{i}.png", f"photo number {i}") for i in range(40)]
    path = write_pairs(tmp_path, rows, "pairs.tsv", "\t")
    run = validated(compose(
        "setting=contrastive", "attack.num_poisoned=5", "contrastive.captions=csv", f"contrastive.csv={path}",
        "contrastive.defense_fraction=0.25", "contrastive.max_pairs=20", "defense.num_samples=10", "dataset.num_workers=0",
    ))  # fmt: skip
    pairs = load_pairs(run, None, tokenize, 16, None, "cpu")
    assert (len(pairs.attacker), len(pairs.defender), len(pairs.poisoned)) == (20, 10, 5)
    assert int(pairs.attacker.triggered.sum()) == 5 and pairs.defender.triggered is None
    captions = lambda c: {tuple(t.tolist()) for t in c.caption_tokens[c.classes, 0]}  # noqa: E731 - one caption per row
    clean_attacker = pairs.attacker.subset(torch.nonzero(~pairs.attacker.triggered).flatten())
    assert len(captions(pairs.defender)) == 10 and len(captions(clean_attacker)) == 15
    assert not captions(pairs.defender) & captions(clean_attacker)  # disjoint shares of the file
    assert captions(pairs.attacker.subset(pairs.poisoned)) <= {tuple(t.tolist()) for t in pairs.target_captions}
    assert pairs.record()["caption_data"] == f"csv:{path}" and pairs.record()["poison_rate"] == 0.25


def test_the_cc3m_recipe_composes_with_the_papers_protocol(compose):
    cfg = compose("experiment=contrastive_cc3m")
    assert (cfg.setting, cfg.contrastive.captions, cfg.model.name, cfg.model.pretrained, cfg.dataset.name) == (
        "contrastive", "csv", "ViT-B-32", "openai", "imagenet",
    )  # fmt: skip
    assert cfg.attack.num_poisoned == 1500 and cfg.contrastive.max_pairs == 500_000
    assert cfg.dataset.class_names[cfg.attack.target_class] == "banana"
    assert cfg.contrastive.csv.endswith("cc3m/cc3m_train.tsv") and cfg.contrastive.image_root.endswith("cc3m")


# --- the whole setting through the command ----------------------------------------------------------------

SHRUNKEN = [
    "experiment=contrastive_cpu", "defense=tbar", "model.pretrain.steps=40", "finetune.steps=40", "finetune.batch_size=32",
    "contrastive.max_pairs=400", "attack.num_poisoned=12", "defense.steps=10", "defense.num_samples=24",
    "defense.alpha_grid=[0.5,1.0]", "dataset.splits.max_val_samples=500", "logger.wandb.mode=disabled",
]  # fmt: skip
CONTRACT_KEYS = (
    "status", "model", "pretrained", "dataset", "attack", "defense", "seed", "target_class", "poison_rate",
    "clean_acc_pretrained", "clean_acc_backdoored", "asr_backdoored", "robust_acc_backdoored", "clean_acc", "asr",
    "robust_acc", "clean_acc_retained", "control_acc_backdoored", "control_acc", "defense_samples", "defense_seconds",
    "alpha", "alpha_curve", "config_hash", "backdoored_from_cache",
)  # fmt: skip


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_contrastive_cpu_runs_end_to_end_shrunken(run_cli):
    done, run_dir = run_cli(*SHRUNKEN)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert set(CONTRACT_KEYS) <= set(record)
    assert record["status"] == "ok" and record["setting"] == "contrastive" and record["dataset"] == "fashion_mnist"
    assert record["num_poisoned"] == 12 and record["attacker_pairs"] == 400 and record["poison_rate"] == pytest.approx(0.03)
    assert record["defense_samples"] == 24 and record["defense_seconds"] > 0
    assert [p["alpha"] for p in record["alpha_curve"]] == [0.0, 0.5, 1.0] and record["alpha"] in (0.0, 0.5, 1.0)
    for key in ("clean_acc_pretrained", "clean_acc_backdoored", "asr_backdoored", "clean_acc", "asr", "robust_acc"):
        assert 0.0 <= record[key] <= 1.0
    assert record["clean_acc_backdoored"] > 0.3  # zero-shot through the fine-tuned text tower still classifies
    poisoned = json.loads((run_dir / "poisoned_indices.json").read_text())["poisoned"]
    assert len(poisoned) == 12 and len(set(poisoned)) == 12
    assert "tbar (alpha=" in done.stdout
