"""Control accuracy: zero-shot clean accuracy on other datasets, the collateral damage of the attack and of
the defense (``control_datasets`` in the config).

Each control dataset is classified through its own zero-shot head (its class names and prompt templates),
built once from theta_pre's text tower like the run's own head, on its test split (the official one, or the
one carved from train by the dataset's own split recipe). The record gets the mean over control datasets
(``control_acc_pretrained``, ``control_acc_backdoored``, ``control_acc``) and each dataset's value
(``control_acc_<name>_pretrained``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bdunlearn.data import datasets
from bdunlearn.data.images import ImageSet
from bdunlearn.evaluation import evaluate
from bdunlearn.models.clip import Preprocess
from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head
from bdunlearn.runtime import Precision


@dataclass
class ControlSet:
    name: str
    test: ImageSet
    classifier: ZeroShotClassifier  # shares the run's CLIP model; only the head is this dataset's


def control_split(dataset_cfg, cache_dir: str | Path | None, load_splits) -> ImageSet:
    """A dataset's test split; the training images are read only if the test split is carved from them."""
    official = datasets.load_official_test(dataset_cfg, cache_dir)
    if official is not None:
        return official
    return load_splits(dataset_cfg).test


def prepare(names: list[str], load_dataset, load_splits, cache_dir, clip, tokenizer, preprocess: Preprocess, device) -> list[ControlSet]:
    """The control datasets' test splits (on ``device``) and zero-shot heads, from the weights ``clip`` holds now;
    ``load_dataset(name)`` gives a dataset's config, ``load_splits(config)`` its splits."""
    sets = []
    for name in names:
        dataset = load_dataset(name)
        head = zeroshot_head(clip, tokenizer, dataset.class_names, dataset.templates, device)
        classifier = ZeroShotClassifier(clip, head, preprocess).to(device)
        sets.append(ControlSet(name, control_split(dataset, cache_dir, load_splits).to(device), classifier))
    return sets


@dataclass
class ControlEvaluator:
    sets: list[ControlSet]
    image_size: int
    batch_size: int
    precision: Precision

    def __call__(self, state, suffix: str) -> dict[str, float]:
        """``control_acc_<name><suffix>`` per dataset and their mean ``control_acc<suffix>`` (nothing if none)."""
        if not self.sets:
            return {}
        entries = {}
        for control in self.sets:
            control.classifier.clip.load_state_dict(state)
            metrics = evaluate(control.classifier, control.test, self.image_size, self.batch_size, None, precision=self.precision)
            entries[f"control_acc_{control.name}{suffix}"] = metrics.clean_acc
        entries[f"control_acc{suffix}"] = sum(entries.values()) / len(entries)
        return entries
