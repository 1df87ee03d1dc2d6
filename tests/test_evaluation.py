import torch
from torch import nn

from bdunlearn.attacks import BadNets
from bdunlearn.data.images import ImageSet
from bdunlearn.evaluation import evaluate


class PatchDetector(nn.Module):
    """Predicts ``target`` when the bottom-right pixel is white, else the class written in the top-left pixel."""

    def __init__(self, target: int, num_classes: int = 4):
        super().__init__()
        self.target, self.num_classes = target, num_classes

    def forward(self, pixels):
        own = (pixels[:, 0, 0, 0] * 255).round().long() % self.num_classes
        pred = torch.where(pixels[:, 0, -1, -1] == 1.0, torch.full_like(own, self.target), own)
        return nn.functional.one_hot(pred, self.num_classes).float()


def _data(n=40, num_classes=4):
    labels = torch.arange(n) % num_classes
    images = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    images[:, 0, 0, 0] = labels.to(torch.uint8)
    return ImageSet(images, labels)


def test_backdoored_classifier_scores_full_asr_and_zero_ra():
    attack = BadNets(target_class=2, poison_rate=0.1, patch_size=1)
    metrics = evaluate(PatchDetector(target=2), _data(), image_size=8, batch_size=7, attack=attack)
    assert metrics.clean_acc == 1.0 and metrics.asr == 1.0 and metrics.robust_acc == 0.0


def test_a_classifier_that_ignores_the_patch_has_zero_asr():
    attack = BadNets(target_class=2, poison_rate=0.1, patch_size=1, location="center")
    metrics = evaluate(PatchDetector(target=2), _data(), image_size=8, batch_size=16, attack=attack)
    assert metrics.clean_acc == 1.0 and metrics.asr == 0.0 and metrics.robust_acc == 1.0


def test_asr_counts_only_non_target_images():
    data = _data()
    attack = BadNets(target_class=1, poison_rate=0.1, patch_size=1)
    # the bottom-right patch is white; a detector whose target differs from the attack's counts nothing
    metrics = evaluate(PatchDetector(target=3), data, image_size=8, batch_size=64, attack=attack)
    assert metrics.asr == 0.0
    # every triggered non-target image is predicted 3: right only for the 10 of 30 that are class 3
    assert abs(metrics.robust_acc - 1 / 3) < 1e-6
