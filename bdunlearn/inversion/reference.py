"""The reference check of an inverted trigger: is its effect specific to the suspicious model?

A planted backdoor is something the attacker's fine-tune *added*: its trigger sends images to the target on
theta_b, not on the public pretrained model theta_pre that theta_b was fine-tuned from. A trigger-inversion method
also finds *natural* universal perturbations, which a clean fine-tune shares with theta_pre. On the tiny CLIP a clean
model has one worth about 6 pixels of DECREE mask that sends most digits to 7, as small as a planted WaNet
trigger's inversion, so the methods' own statistics cannot tell the two apart (docs/unknown-attacks.md).

The check compares the inverted trigger's flip rate towards the estimated target on theta_b with the same flip
rate on theta_pre (both on the defender's pool):

    transfer = min(1, flip rate on theta_pre / flip rate on theta_b)    (1.0 when theta_b flips < min_flip)

and calls the trigger backdoor-specific when ``transfer < reference_threshold``. It needs theta_pre, which the
defender has whenever the suspect was fine-tuned from a published model (TBAR's setting: CLIP weights are public).
"""

from __future__ import annotations

from dataclasses import dataclass

from bdunlearn.attacks.base import Attack
from bdunlearn.inversion.base import DETECTIONS, InversionContext, flip_rate
from bdunlearn.task_vectors import StateDict


@dataclass
class Specificity:
    suspect_flip_rate: float  # the inverted trigger's flip rate towards the target on theta_b
    reference_flip_rate: float  # the same on theta_pre
    transfer: float  # min(1, reference / suspect); 1.0 when the trigger flips too little on theta_b to judge


def transfer(suspect_flip_rate: float, reference_flip_rate: float, min_flip: float) -> float:
    """Share of the trigger's effect on the suspect that the reference model shows too, in [0, 1]."""
    if suspect_flip_rate <= 0 or suspect_flip_rate < min_flip:
        return 1.0
    return min(1.0, reference_flip_rate / suspect_flip_rate)


def measure(
    context: InversionContext, trigger: Attack, target: int, suspect: StateDict, reference: StateDict, min_flip: float
) -> Specificity:
    """Flip rates of ``trigger`` towards ``target`` with the suspect's and the reference's weights loaded into
    ``context.classifier.clip`` (the suspect's are loaded again afterwards)."""
    clip = context.classifier.clip
    clip.load_state_dict(suspect)
    on_suspect = flip_rate(context, trigger, target)
    clip.load_state_dict(reference)
    try:
        on_reference = flip_rate(context, trigger, target)
    finally:
        clip.load_state_dict(suspect)
    return Specificity(on_suspect, on_reference, transfer(on_suspect, on_reference, min_flip))


def verdict(detection: str, statistic_detected: bool, specificity: Specificity, threshold: float) -> bool:
    """``statistic``: the method's own verdict; ``reference``: the trigger is specific to the suspect;
    ``both``: both must hold."""
    specific = specificity.transfer < threshold
    if detection == "statistic":
        return statistic_detected
    if detection == "reference":
        return specific
    if detection == "both":
        return statistic_detected and specific
    raise ValueError(f"detection must be one of {DETECTIONS}, got {detection!r}")
