"""Clean fine-tuning: theta_b fine-tuned on clean samples with cross-entropy through the frozen zero-shot head;
in the contrastive setting, with the CLIP loss on clean image-caption pairs."""

from __future__ import annotations

from dataclasses import dataclass

from bdunlearn.data.poison import clean
from bdunlearn.defenses import finetuning
from bdunlearn.defenses.base import DefenseInputs, DefenseOutcome
from bdunlearn.objectives import classification_loss, pairs_loss


@dataclass
class CleanFinetuneConfig(finetuning.FinetuneDefenseConfig):
    """Clean fine-tuning of theta_b: cross-entropy through the frozen zero-shot head on clean samples of the
    defender's pool, with the attack's optimiser settings for the tiny CLIP."""

    name: str = "finetune"


Config = CleanFinetuneConfig
check = finetuning.check
CONTRASTIVE = True


def defend(inputs: DefenseInputs, cfg: Config) -> DefenseOutcome:
    def make_loss(samples, generator):
        if inputs.contrastive:
            return pairs_loss(inputs.classifier, samples, None, inputs.image_size, generator)
        return classification_loss(inputs.classifier, clean(samples), None, inputs.image_size, generator)

    return finetuning.finetune_from_backdoored(inputs, cfg, make_loss, "finetune: clean fine-tune")
