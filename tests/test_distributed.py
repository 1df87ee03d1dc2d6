"""torch.distributed: two CPU processes (gloo) fine-tune to the weights one process reaches at the same global
batch, and only rank 0 writes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bdunlearn import distributed
from bdunlearn.errors import UserError

# Gradients are averaged over the ranks in a different order than one process sums them, so the weights agree to
# float32 rounding (measured: 1.2e-7 for cross-entropy, 4.5e-6 for the gathered CLIP loss after 6 AdamW steps).
# One exception: the key third of each attention in_proj_bias, whose gradient is exactly zero in exact arithmetic
# (a bias on the keys shifts a whole row of attention logits, which softmax ignores); both runs move it by AdamW
# steps of float noise, up to lr per step, so it is only held to that bound.
WEIGHT_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-5
LR, STEPS = 1e-3, 6


def _comparable(name: str, value: torch.Tensor) -> torch.Tensor:
    """The weights whose gradient is not zero in exact arithmetic (all but the attention key biases)."""
    if name.endswith("attn.in_proj_bias"):
        d = value.numel() // 3
        return torch.cat([value[:d], value[2 * d :]])
    return value
CASES = ("classification", "contrastive", "streamed")


def _files(folder: Path, count: int = 16) -> list[str]:
    rng = np.random.default_rng(2)
    paths = []
    for i in range(count):
        path = folder / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (18, 18, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _fine_tune(case: str, folder: Path) -> tuple[dict[str, torch.Tensor], list[float]]:
    """One fine-tune of the tiny model on 16 images, global batch 8, no random augmentation."""
    from bdunlearn.data import stream
    from bdunlearn.data.captions import from_captions
    from bdunlearn.data.decoded import FileList, decode
    from bdunlearn.data.poison import clean
    from bdunlearn.models import clip as clips
    from bdunlearn.models.zeroshot import ZeroShotClassifier
    from bdunlearn.objectives import finetune_classifier, finetune_pairs
    from bdunlearn.params import trainable_parameters
    from bdunlearn.streaming import finetune_classifier_streamed
    from bdunlearn.training import OptimSettings

    torch.set_num_threads(1)
    files = FileList(tuple(sorted(str(p) for p in folder.glob("*.png"))), tuple(i % 3 for i in range(16)))
    data = decode(files, 16, dataset="t", split="train", root="/", num_workers=0, cache_dir=None)
    torch.manual_seed(distributed.rank())  # different initial weights per rank: fit must start all from rank 0's
    model = clips.create("bdunlearn-tiny")
    classifier = ZeroShotClassifier(model, torch.randn(3, 64, generator=torch.Generator().manual_seed(0)), clips.preprocess_of(model))
    settings = OptimSettings(steps=STEPS, batch_size=8, lr=LR, warmup_steps=1)
    if case == "classification":
        params = list(trainable_parameters(model, "visual").values())
        result = finetune_classifier(classifier, params, clean(data), None, 16, settings, seed=1, desc="t")
    elif case == "streamed":
        params = list(trainable_parameters(model, "visual").values())
        split = stream.from_file_list(files, 16, num_workers=1)
        result = finetune_classifier_streamed(classifier, params, split, None, 16, settings, seed=1, desc="t")
    else:
        tokenizer = clips.tokenizer("bdunlearn-tiny")
        pairs = from_captions(data.images, [f"picture {i}" for i in range(16)], tokenizer)
        result = finetune_pairs(classifier, list(model.parameters()), pairs, None, 16, settings, seed=1, desc="t")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, result.losses


def _rank_main(rank: int, world: int, port: int, folder: str) -> None:
    from safetensors.torch import save_file

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    with distributed.session("gloo") as joined:
        assert joined and distributed.world_size() == world
        for case in CASES:
            weights, losses = _fine_tune(case, Path(folder))
            out = Path(folder) / f"{case}-rank{rank}.safetensors"
            tensors = {**weights, "losses": torch.tensor(losses, dtype=torch.float64)}
            written = distributed.on_main(lambda out=out, tensors=tensors: save_file(tensors, str(out)) or str(out))
            assert written == str(Path(folder) / f"{case}-rank0.safetensors")  # every rank learns what rank 0 wrote


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_as_one_at_the_same_global_batch(tmp_path):
    from safetensors.torch import load_file

    _files(tmp_path)
    torch.multiprocessing.spawn(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == [f"{case}-rank0.safetensors" for case in sorted(CASES)]
    for case in CASES:
        reference, losses = _fine_tune(case, tmp_path)
        parallel = load_file(str(tmp_path / f"{case}-rank0.safetensors"))
        assert np.allclose(parallel.pop("losses").numpy(), losses, rtol=LOSS_TOLERANCE, atol=0), case
        worst = max((_comparable(k, parallel[k]) - _comparable(k, v)).abs().max().item() for k, v in reference.items())
        assert worst <= WEIGHT_TOLERANCE, f"{case}: weights differ by up to {worst:.2e}"
        key_bias = max((parallel[k] - v).abs().max().item() for k, v in reference.items() if k.endswith("in_proj_bias"))
        assert key_bias <= 2 * LR * STEPS
        print(f"{case}: max |weight difference| {worst:.2e} (attention key biases {key_bias:.2e})")


def test_single_process_helpers_are_no_ops():
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    schedule = lambda step: torch.arange(8) + step  # noqa: E731
    assert distributed.rank_share(schedule) is schedule
    assert distributed.share_bounds(7) == (0, 7)
    assert distributed.on_main(lambda: 42) == 42
    with distributed.main_first():
        pass


def test_shares_split_the_global_batch_evenly(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    assert distributed.share_bounds(128) == (64, 96)
    with pytest.raises(UserError, match="batch size 30 does not split evenly over 4 processes"):
        distributed.share_bounds(30)


def test_slurm_tasks_become_torchrun_variables(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(name, "")  # recorded, so the values set below are undone (the command reads them)
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[07-09,12]")
    distributed._slurm_to_torch_env()
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("3", "4", "1")
    assert os.environ["MASTER_ADDR"] == "gpu07" and os.environ["MASTER_PORT"] == "20123"
    assert distributed.first_host("node1,node2") == "node1"


def test_an_salloc_shell_is_one_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "SLURM_PROCID"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_NTASKS", "4")  # the allocation's tasks; no srun started this process
    distributed._slurm_to_torch_env()
    assert "WORLD_SIZE" not in os.environ and not distributed.init_from_env()


def test_the_multi_gpu_slurm_preset_runs_one_process_per_gpu():
    from hydra import compose, initialize_config_dir

    from bdunlearn.config import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm_multigpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node > 1 and launcher.nodes == 1
