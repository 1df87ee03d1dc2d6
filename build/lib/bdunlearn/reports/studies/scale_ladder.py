"""The scale study's rungs (models of the ladder) and arms (named defense recipes), in the order reports show them."""

from __future__ import annotations

import pandas as pd

from bdunlearn.models.architectures import architecture

ARM_ORDER = (
    "none", "tbar", "tbar_non_target", "tbar_minus_clean", "tbar_project_clean", "tbar_first_block", "tbar_attention",
    "tbar_from_pretrained", "tbar_long", "tbar_high_lr", "tbar_replay", "interpolate", "finetune_1x", "finetune_10x", "finetune_50x",
)  # fmt: skip


def rung_size(model: str) -> tuple[int, int]:
    """(width, layers) of the image tower: the rungs' order."""
    vision = architecture(model)["vision_cfg"]
    return vision["width"], vision["layers"]


def rung_name(model: str) -> str:
    width, layers = rung_size(model)
    return f"{model.removeprefix('bdunlearn-')} (w{width}, {layers}L)"


def rungs(frame: pd.DataFrame) -> list[str]:
    """The models of the records, smallest first."""
    return sorted(frame["model"].unique(), key=rung_size)


def arms(frame: pd.DataFrame) -> list[str]:
    """The arms (record ``label``) of the records: ``ARM_ORDER``'s first, others after, sorted."""
    present = set(frame["label"])
    return [a for a in ARM_ORDER if a in present] + sorted(present - set(ARM_ORDER))
