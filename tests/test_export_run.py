"""A run leaves its defended model in <run dir>/model; plain open_clip loads it in a fresh process and, evaluated on
the run's test split, it gives the record's CA and ASR exactly."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import SHRINK

RELOAD = """
import json, sys
import open_clip  # the model is loaded by open_clip alone, before bdunlearn is imported
folder, overrides = sys.argv[1], sys.argv[2:]
model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
model.eval()

from bdunlearn import api, attacks
from bdunlearn.data import datasets
from bdunlearn.data.splits import make_splits
from bdunlearn.evaluation import evaluate
from bdunlearn.models import clip as clip_models
from bdunlearn.models.zeroshot import ZeroShotClassifier, zeroshot_head

cfg = api.config(overrides)
test = make_splits(datasets.load(cfg.dataset, None), cfg.dataset.splits).test
preprocess = clip_models.preprocess_of(model)
head = zeroshot_head(model, clip_models.tokenizer(cfg.model.name), cfg.dataset.class_names, cfg.dataset.templates, "cpu")
metrics = evaluate(ZeroShotClassifier(model, head, preprocess), test, preprocess.image_size, 512, attacks.build(cfg.attack), seed=cfg.seed)
print(json.dumps({"clean_acc": metrics.clean_acc, "asr": metrics.asr}))
"""


def test_the_exported_defended_model_reloads_in_plain_open_clip_to_the_records_numbers(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("BDUNLEARN_CACHE_DIR", str(tmp_path / "cache"))  # its own: other tests count cache hits
    overrides = [*SHRINK, "defense.alpha_grid=[0.5,1.0]"]
    done, run_dir = run_cli(*overrides)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    # both of TBAR's operating points are recorded; the kappa rule's is the defended model by default
    assert record["alpha_rule"] == "kappa" and record["alpha_kappa"] == record["alpha"] and record["asr_kappa"] == record["asr"]
    assert record["alpha_asr_target"] in (0.5, 1.0, 0.0) and 0.0 <= record["clean_acc_asr_target"] <= 1.0
    assert record["trigger_finetune_start_loss"] > 0 and record["trigger_finetune_start_grad_norm"] > 0  # the estimate's start
    folder = run_dir / "model"
    assert record["exported_model"] == str(folder) and (folder / "open_clip_config.json").is_file()
    assert "tbar" in (folder / "README.md").read_text()  # the model card names the defense
    reload = subprocess.run([sys.executable, "-c", RELOAD, str(folder), *overrides], capture_output=True, text=True, timeout=300)
    assert reload.returncode == 0, reload.stderr[-2000:]
    numbers = json.loads(reload.stdout.strip().splitlines()[-1])
    assert numbers == {"clean_acc": record["clean_acc"], "asr": record["asr"]}


def test_sweep_jobs_do_not_export_by_default(tmp_path):
    from bdunlearn import api
    from bdunlearn.cli import model_folder
    from bdunlearn.preflight import validated

    cfg = validated(api.compose([]))
    assert model_folder(cfg, tmp_path, in_sweep=False) == tmp_path / "model"
    assert model_folder(cfg, tmp_path, in_sweep=True) is None
    assert model_folder(validated(api.compose(["save_model=true"])), tmp_path, in_sweep=True) == tmp_path / "model"
    assert model_folder(validated(api.compose(["save_model=false"])), tmp_path, in_sweep=False) is None
