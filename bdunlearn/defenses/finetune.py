"""Clean fine-tuning: theta_b fine-tuned on clean samples with cross-entropy through the frozen zero-shot head."""

from __future__ import annotations

from bdunlearn.data.poison import clean
from bdunlearn.defenses import finetuning
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome
from bdunlearn.training import classification_loss

Config = finetuning.FinetuneDefenseConfig
check = finetuning.check


def defend(inputs: DefenseInputs, cfg: Config) -> DefenseOutcome:
    def make_loss(samples, generator):
        return classification_loss(inputs.classifier, clean(samples), None, inputs.image_size, generator)

    return finetuning.finetune_from_backdoored(inputs, cfg, make_loss, "finetune: clean fine-tune")
