"""The paper recipes (conf/experiment/paper_*.yaml) compose and are validated point by point before a sweep starts;
`bdunlearn model=vit_b32 dataset=gtsrb` here fails fast offline, and from scratch on a GTSRB fixture it runs."""

from __future__ import annotations

import json
import math

import paper_fixtures as fx
import pytest
from conftest import child_cpu_seconds
from test_paper_models import fake_hub_cache
from test_reliability import assert_one_line_error

from bdunlearn.config import CONFIG_DIR

EPOCHS = {"cars": 35, "dtd": 76, "eurosat": 12, "gtsrb": 11, "mnist": 5, "resisc45": 15, "sun397": 14, "svhn": 4}
# the paper-scale recipes (ViT-B/32 on the task-arithmetic datasets); paper_regime is a CPU recipe of its own
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("paper_*.yaml") if p.stem != "paper_regime")


def test_there_are_paper_experiments():
    assert {"paper_classification", "paper_attacks"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_paper_experiments_compose_with_the_task_arithmetic_recipe(compose, experiment):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        sweep = hydra_compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = sweep.hydra.sweeper.params
    assert set(params["dataset"].split(",")) == set(EPOCHS) and params["seed"] == "0,1,2"
    assert set(params["defense"].split(",")) == {"none", "tbar"}
    for dataset, epochs in EPOCHS.items():
        cfg = compose(f"experiment={experiment}", f"dataset={dataset}")
        assert cfg.model.name == "ViT-B-32" and cfg.model.pretrained == "openai"
        assert (cfg.finetune.lr, cfg.finetune.batch_size, cfg.finetune.weight_decay, cfg.finetune.warmup_steps) == (1e-5, 128, 0.1, 500)
        assert cfg.finetune.epochs == epochs and cfg.dataset.finetune_epochs == epochs
        assert list(cfg.control_datasets) == ["imagenet"]
    other = compose(f"experiment={experiment}", "model=vit_l14", "dataset=dtd")
    assert other.model.name == "ViT-L-14"


def test_paper_attacks_sweeps_the_four_attacks_the_paper_names_with_224_px_settings(compose):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        sweep = hydra_compose(config_name="config", overrides=["experiment=paper_attacks"], return_hydra_config=True)
    swept = sweep.hydra.sweeper.params["paper_attack"].split(",")
    assert sorted(swept) == ["badclip", "badnets", "blended", "wanet"]  # SIG is an extra, run by name
    for name in [*swept, "sig"]:
        assert compose("experiment=paper_attacks", f"paper_attack={name}").attack.name == name
    assert compose("experiment=paper_attacks").attack.patch_size == 16
    wanet = compose("experiment=paper_attacks", "paper_attack=wanet").attack
    assert (wanet.strength, wanet.poison_rate, wanet.cross_ratio) == (0.5, 0.1, 2)
    assert "extra" in (CONFIG_DIR / "paper_attack" / "sig.yaml").read_text()
    assert compose().attack.patch_size == 3  # the group is empty unless chosen


def test_epochs_become_steps_over_the_attackers_training_split(compose):
    from bdunlearn.data.splits import split_sizes
    from bdunlearn.preflight import validated

    run = validated(compose("finetune.epochs=2.5", "finetune.batch_size=100"))
    train = split_sizes(1797, False, run.dataset.splits)["train"]
    assert run.finetune.steps == math.ceil(2.5 * train / 100)
    assert validated(compose("finetune.steps=7")).finetune.steps == 7  # no epochs: steps as given


def test_a_paper_point_validates_on_data_and_weights_in_place(compose, tmp_path):
    """With GTSRB and ImageNet's val folder under dataset.root and the weights in the cache, a point of the
    paper sweep validates: 11 GTSRB epochs become steps, images are stored at the model's 224 px."""
    from bdunlearn.data.splits import split_sizes
    from bdunlearn.preflight import validated

    fx.write_gtsrb(tmp_path / "data", class_ids=tuple(range(43)), per_class=2, test_per_class=1)
    fx.write_imagenet(tmp_path / "data", train=False)
    cache = fake_hub_cache(tmp_path / "hub", "timm/vit_base_patch32_clip_224.openai")
    run = validated(compose("experiment=paper_classification", "dataset=gtsrb", f"paths.data_dir={tmp_path / 'data'}",
                           f"model.cache_dir={cache}", "defense.num_samples=4"))  # fmt: skip
    train = split_sizes(86, True, run.dataset.splits)["train"]
    assert run.finetune.steps == math.ceil(11 * train / 128) and run.dataset.image_size == 224
    assert run.control_datasets == ["imagenet"] and run.attack.patch_size == 16


# paper_attacks' 192 points take 47 s: outside the default suite (its attacks' settings are composed above)
GRIDS = [pytest.param(e, marks=pytest.mark.slow) if e == "paper_attacks" else e for e in EXPERIMENTS]


@pytest.mark.parametrize("experiment", GRIDS)
def test_every_paper_grid_point_validates_on_fixture_data(experiment, tmp_path):
    """Every point of the grid validates with the eight datasets and ImageNet's val folder (fixtures) and the
    weights (a stand-in hub cache) in place; the budget is shrunk to fit the fixtures' tiny defender's pools."""
    from bdunlearn.cli import preflight
    from bdunlearn.errors import UserError

    data = tmp_path / "data"
    for name in EPOCHS:
        fx.WRITERS[name](data)
    fx.write_imagenet(data, train=False)
    cache = fake_hub_cache(tmp_path / "hub", "timm/vit_base_patch32_clip_224.openai")
    common = ["-m", f"experiment={experiment}", f"paths.data_dir={data}", f"model.cache_dir={cache}",
              "dataset.splits.defense_fraction=0.5", f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    preflight([*common, "defense.num_samples=1"])  # raises UserError on any bad point
    with pytest.raises(UserError, match="defense.num_samples=99999"):
        preflight([*common, "defense.num_samples=99999"])


def test_a_paper_sweep_is_validated_point_by_point_before_it_starts(run_cli, tmp_path):
    """The experiment's own sweep (hydra.sweeper.params) is expanded by the preflight: the first point already
    names what is missing, in one line, and nothing is written."""
    done, _ = run_cli("-m", "experiment=paper_classification", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                            f"model.cache_dir={tmp_path / 'no-weights'}", timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr[-1000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be downloaded offline" in lines[0]
    assert not (tmp_path / "sweep").exists()


def test_preflight_expands_the_grid_a_paper_experiment_declares():
    from hydra import initialize_config_dir

    from bdunlearn.cli import _config_sweeps, _expand

    command_line = ["experiment=paper_classification", "seed=5"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        declared = _config_sweeps(command_line, command_line)
    runs = _expand(command_line + declared, multirun=True)
    assert len(runs) == 8 * 2  # datasets x defenses; seed=5 on the command line replaces the declared 0,1,2
    assert all("seed=5" in run for run in runs) and {"dataset=cars", "defense=none"} <= {o for run in runs for o in run}


# --- the paper's setting on this machine ---------------------------------------------------------------------

FROM_SCRATCH = ["model.pretrained=null", "model.pretrain={corpus:[gtsrb],steps:1,batch_size:8,warmup_steps:0}"]


def test_the_paper_setting_fails_fast_without_weights_or_data(run_cli):
    started = child_cpu_seconds()
    done, run_dir = run_cli("model=vit_b32", "dataset=gtsrb", timeout=60)
    assert_one_line_error(done, "open_clip weights ViT-B-32/openai", child_cpu_seconds() - started, run_dir)
    assert "cannot be downloaded offline" in done.stderr and "model.cache_dir" in done.stderr

    started = child_cpu_seconds()
    done, run_dir = run_cli("model=vit_b32", "dataset=gtsrb", *FROM_SCRATCH, timeout=60)
    assert_one_line_error(done, "dataset=gtsrb: no GTSRB under", child_cpu_seconds() - started, run_dir)
    assert "dataset.root" in done.stderr and "dataset.download=true" in done.stderr


@pytest.mark.slow
def test_vit_b32_from_scratch_on_a_gtsrb_fixture_runs_a_training_step_per_stage(run_cli, tmp_path):
    fx.write_gtsrb(tmp_path, class_ids=(0, 1, 2, 3), per_class=5, test_per_class=2)
    done, run_dir = run_cli(
        "model=vit_b32", "dataset=gtsrb", f"dataset.root={tmp_path}", "dataset.num_workers=0", *FROM_SCRATCH,
        "finetune.steps=1", "finetune.batch_size=8", "finetune.warmup_steps=0",
        "defense.steps=1", "defense.num_samples=1", "defense.batch_size=1", "defense.alpha_grid=[0.0,1.0]",
        "eval_batch_size=16", "checkpoint_every=0", timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "ok" and record["model"] == "ViT-B-32" and record["dataset"] == "gtsrb"
    assert record["pretrained"] is None and 0.0 <= record["clean_acc"] <= 1.0 and record["alpha"] in (0.0, 1.0)
