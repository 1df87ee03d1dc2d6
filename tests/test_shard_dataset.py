"""``dataset=shards``: a user's webdataset shards, written by ``bdunlearn-data shards``, as a dataset of the
``bdunlearn`` command; streamed, poisoned by index as the same images in a folder, and one-line mistakes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_scale_run import METRIC_TOLERANCE, _command, _records, _write_folder

# The folder's 300 images as shards of 40 (8 shards), in the folder's listing order (--keep-order), so that sample
# i of the shards is image i of the folder: the same splits are carved and the same items poisoned.
MAXCOUNT = 40
# Trained on the same items, the shard stream draws other batches than the file stream (shards in a seeded order
# through a shuffle buffer, not the in-memory permutation), so theta_b differs. After SHRUNK's 20 fine-tuning steps
# the backdoor is half-planted and its ASR swings with the batch order (measured 0.78 against 0.27); after 60 both
# have learnt it: measured CA 0.950 / 0.933, ASR 0.927 / 0.927. TBAR's 5 defense steps from two different theta_b
# are left uncompared (their ASR measured 0.90 / 0.71).
STEPS = "finetune.steps=60"
BACKDOORED_TOLERANCE = 0.05


def _to_shards(src: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bdunlearn.data.cli", "shards", str(src), str(out), *flags],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("shards")
    _write_folder(base / "images")
    done = _to_shards(base / "images", base / "data", f"--maxcount={MAXCOUNT}", "--keep-order")
    assert done.returncode == 0, done.stderr
    shards = ("dataset=shards", f"dataset.root={base / 'data'}", "dataset.class_names=[one,seven,zero]")
    return {
        "folder": _command(base, "folder", STEPS, "dataset.storage=stream", "dataset.num_workers=2"),
        "shards": _command(base, "shards", STEPS, *shards, "dataset.num_workers=2", dataset="shards"),
    }


def test_shards_run_streamed_with_the_folder_runs_poisoned_items(runs):
    (folder,), (shards,) = _records(runs["folder"]), _records(runs["shards"])
    assert shards["status"] == "ok"
    assert (shards["dataset"], shards["data_storage"]) == ("shards", "stream")
    poisoned = [json.loads(next((w / "outputs").rglob("poisoned_indices.json")).read_text()) for w in runs.values()]
    assert poisoned[0] == poisoned[1] and len(poisoned[0]["poisoned"]) > 0
    # theta_pre never sees this data: evaluated on the same test items, it scores the same
    for metric in ("clean_acc", "asr", "robust_acc"):
        assert shards[f"{metric}_pretrained"] == pytest.approx(folder[f"{metric}_pretrained"], abs=METRIC_TOLERANCE), metric
    assert folder["asr_backdoored"] > 0.8  # the backdoor is planted, so the comparison below says something
    for key in ("clean_acc_backdoored", "asr_backdoored"):
        assert shards[key] == pytest.approx(folder[key], abs=BACKDOORED_TOLERANCE), key
    assert shards["config_hash"] != folder["config_hash"]  # another dataset, keyed by its shard files


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("layouts")
    _write_folder(base / "images")
    for out, flags in {"flat": (), "nometa": ("--maxcount=100",), "split/train": ()}.items():
        assert _to_shards(base / "images", base / out, *flags).returncode == 0
    (base / "nometa" / "manifest.json").unlink()  # tar shards as another tool writes them: .cls labels only
    (base / "nometa" / "labels.npy").unlink()
    two = base / "two"  # a folder of two of the three classes
    for name in ("one", "seven"):
        shutil.copytree(base / "images" / name, two / name)
    for out, src in {"both/train": "images", "both/test": "images", "mismatch/train": "images", "mismatch/test": "two"}.items():
        assert _to_shards(base / src, base / out, "--maxcount=100").returncode == 0
    (base / "empty").mkdir()
    (base / "split" / "test").mkdir()
    (base / "testonly" / "test").mkdir(parents=True)
    return base


def test_class_names_come_from_the_manifest_and_the_cache_keys_the_files(compose, layouts):
    from bdunlearn.preflight import validated

    run = validated(compose("dataset=shards", f"dataset.root={layouts / 'flat'}", "defense.num_samples=10"))
    assert run.dataset.class_names == ["one", "seven", "zero"] and run.dataset.storage == "stream"
    named = validated(compose("dataset=shards", f"dataset.root={layouts / 'nometa'}", "dataset.class_names=[a,b,c]",
                              "defense.num_samples=10"))  # fmt: skip
    assert named.dataset.class_names == ["a", "b", "c"]
    assert run.dataset.files_fingerprint != named.dataset.files_fingerprint
    first = sorted((layouts / "flat").glob("*.tar"))[0]
    first.touch()  # a rewritten shard is other data
    again = validated(compose("dataset=shards", f"dataset.root={layouts / 'flat'}", "defense.num_samples=10"))
    assert again.dataset.files_fingerprint != run.dataset.files_fingerprint


def test_train_and_test_shard_sets_are_the_official_splits(compose, layouts):
    from bdunlearn.data.sources import load_splits, streamed
    from bdunlearn.preflight import validated

    run = validated(compose("dataset=shards", f"dataset.root={layouts / 'both'}", "defense.num_samples=10"))
    splits = load_splits(run.dataset, cache_dir=None)
    assert all(streamed(part) for part in (splits.train, splits.defense, splits.val, splits.test))
    assert len(splits.test) == 300  # the test/ shards, whole
    assert len(splits.train) + len(splits.val) + len(splits.defense) == 300  # train/ carved without a test part


@pytest.mark.parametrize(
    ("where", "override", "words"),
    [
        ("missing", "", "dataset=shards: dataset.root={root} does not exist; set it to a folder of shards"),
        ("empty", "", "dataset=shards: dataset.root={root} holds no shards (*.tar); write them with `bdunlearn-data shards SRC {root}`"),
        ("nometa", "", "dataset=shards: the shards in {root} carry no class names (no manifest.json"),
        ("split", "", "dataset=shards: {root}/test holds no shards (*.tar)"),
        ("testonly", "", "dataset=shards: {root} has test/ but no train/"),
        ("mismatch", "", "dataset=shards: the test shards in {root}/test have classes one, seven but the training shards one, seven, zero"),
        ("flat", "dataset.storage=memory", "dataset.storage=memory: dataset=shards always streams its shards"),
        ("flat", "setting=contrastive", "dataset=shards trains the classification setting"),
        ("flat", "attack=badclip", "attack=badclip optimises its trigger over the training images in memory; use dataset=folder"),
        ("flat", "dataset.max_train_per_class=5", "dataset.max_train_per_class does not apply to dataset=shards"),
    ],
)
def test_shard_mistakes_are_one_line_errors(compose, layouts, where, override, words):
    from bdunlearn.errors import UserError
    from bdunlearn.preflight import validated

    root = layouts / where
    with pytest.raises(UserError) as caught:
        validated(compose("dataset=shards", f"dataset.root={root}", "defense.num_samples=10", *([override] if override else [])))
    assert words.format(root=root) in str(caught.value) and "\n" not in str(caught.value)


def test_a_shard_mistake_stops_the_command_with_one_line(run_cli, tmp_path):
    done, run_dir = run_cli("dataset=shards", f"dataset.root={tmp_path / 'none'}")
    assert done.returncode == 2 and not run_dir.exists()
    assert done.stderr.strip().splitlines() == [
        f"bdunlearn: error: dataset=shards: dataset.root={tmp_path / 'none'} does not exist; set it to a folder of shards "
        "(write them with `bdunlearn-data shards SRC DIR` from a folder of class subfolders)"
    ]
