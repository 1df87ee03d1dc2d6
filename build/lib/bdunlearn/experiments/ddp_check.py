"""What ``scripts/ddp_check.py`` measures (its docstring says how to run it); the script only parses arguments."""

from __future__ import annotations

from pathlib import Path

import torch

from bdunlearn import distributed  # noqa: E402
from bdunlearn.experiments.image_files import write_image_folder  # noqa: E402

CASES = ("classification", "streamed", "contrastive")
TOLERANCE = 1e-4  # float32 sums in another order (CPU: <= 5e-6 measured); attention key biases excluded (zero gradient)


def fine_tune(case: str, files, device: torch.device) -> dict[str, torch.Tensor]:
    from bdunlearn.data import stream
    from bdunlearn.data.captions import from_captions
    from bdunlearn.data.decoded import decode
    from bdunlearn.data.poison import clean
    from bdunlearn.models import clip as clips
    from bdunlearn.models.zeroshot import ZeroShotClassifier
    from bdunlearn.objectives import finetune_classifier, finetune_pairs
    from bdunlearn.params import trainable_parameters
    from bdunlearn.streaming import finetune_classifier_streamed
    from bdunlearn.training import OptimSettings

    data = decode(files, 16, dataset="ddp", split="train", root="/", num_workers=0, cache_dir=None)
    torch.manual_seed(distributed.rank())  # fit starts every rank from rank 0's weights
    model = clips.create("bdunlearn-tiny", device=device)
    head = torch.randn(10, 64, generator=torch.Generator().manual_seed(0)).to(device)
    classifier = ZeroShotClassifier(model, head, clips.preprocess_of(model)).to(device)
    settings = OptimSettings(steps=8, batch_size=32, lr=1e-3, warmup_steps=2)
    visual = list(trainable_parameters(model, "visual").values())
    if case == "classification":
        finetune_classifier(classifier, visual, clean(data).to(device), None, 16, settings, seed=1, desc=case)
    elif case == "streamed":
        finetune_classifier_streamed(classifier, visual, stream.from_file_list(files, 16, 2), None, 16, settings, seed=1, desc=case)
    else:
        pairs = from_captions(data.images, [f"item {i}" for i in range(len(files))], clips.tokenizer("bdunlearn-tiny")).to(device)
        finetune_pairs(classifier, list(model.parameters()), pairs, None, 16, settings, seed=1, desc=case)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def compare(out: Path) -> None:
    from safetensors.torch import load_file

    worst = 0.0
    for case in CASES:
        reference = load_file(str(out / f"{case}-world1.safetensors"))
        for path in sorted(out.glob(f"{case}-world[2-9]*.safetensors")):
            other = load_file(str(path))
            keep = [k for k in reference if not k.endswith("attn.in_proj_bias")]
            diff = max((other[k] - reference[k]).abs().max().item() for k in keep)
            worst = max(worst, diff)
            print(f"{path.stem}: max |weight difference| to one process {diff:.3g}")
    print(f"max_weight_difference={worst:.3g} tolerance={TOLERANCE} ok={worst <= TOLERANCE}")


def run(args) -> None:
    """The measurement, for the arguments ``scripts/ddp_check.py`` parses."""
    out = Path(args.out)
    if args.compare:
        return compare(out)
    from safetensors.torch import save_file

    with distributed.session(args.backend):
        nccl = distributed.active() and torch.distributed.get_backend() == "nccl"
        device = distributed.device() if nccl else torch.device(args.device)
        files = distributed.on_main(lambda: write_image_folder(out / "images", 64, "png")[0])
        for case in CASES:
            if case == "contrastive" and device.type == "cuda" and distributed.active() and not nccl:
                if distributed.is_main():
                    print("contrastive: skipped (gloo cannot all_gather CUDA tensors; NCCL runs it)")
                continue
            weights = fine_tune(case, files, device)
            name = out / f"{case}-world{distributed.world_size()}.safetensors"
            distributed.on_main(lambda weights=weights, name=name: save_file(weights, str(name)))
            if distributed.is_main():
                print(f"{case}: {distributed.world_size()} process(es) on {device} -> {name}")
