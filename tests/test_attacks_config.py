"""Every attack's config mistakes are one-line UserErrors from validation, before any compute."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bdunlearn.errors import UserError
from bdunlearn.preflight import validated


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["attack=badnets", "attack.pattern=file"], "attack.pattern_file is not set"),
        (["attack=badnets", "attack.pattern=file", "attack.pattern_file=/nonexistent/t.png"], "/nonexistent/t.png: no such file"),
        (["attack=blended", "attack.blend_ratio=0"], "attack.blend_ratio"),
        (["attack=blended", "attack.blend_ratio=1.5"], "attack.blend_ratio"),
        (["attack=blended", "attack.pattern=stripes"], "attack.pattern='stripes'"),
        (["attack=blended", "attack.pattern=file", "attack.pattern_file=/nonexistent/t.png"], "no such file"),
        (["attack=wanet", "attack.grid_size=17"], "attack.grid_size=17 exceeds the model's 16px input"),
        (["attack=wanet", "attack.grid_size=1"], "attack.grid_size"),
        (["attack=wanet", "attack.strength=0"], "attack.strength"),
        (["attack=wanet", "attack.grid_rescale=-1"], "attack.grid_rescale"),
        (["attack=wanet", "attack.cross_ratio=-1"], "attack.cross_ratio"),
        (["attack=wanet", "attack.poison_rate=0.5", "attack.cross_ratio=2"], "lower one of them"),
        (["attack=sig", "attack.amplitude=0"], "attack.amplitude"),
        (["attack=sig", "attack.frequency=9"], "attack.frequency=9.0 exceeds"),
        (["attack=sig", "attack.frequency=-1"], "attack.frequency"),
        (["attack=sig", "attack.target_class=10"], "attack.target_class"),
        (["attack=badclip", "attack.optim_steps=0"], "attack.optim_steps"),
        (["attack=badclip", "attack.optim_lr=0"], "attack.optim_lr"),
        (["attack=badclip", "attack.patch_size=17"], "attack.patch_size"),
        (["attack=badclip", "attack.location=middle"], "attack.location"),
        (["attack=none", "attack.poison_rate=0.1"], "attack=none poisons nothing"),
        (["attack=none", "defense=tbar"], "defense=tbar needs a trigger"),
        (["attack=wanet", "+attack.patch_size=3"], "patch_size"),  # a key of another attack
    ],
)
def test_attack_mistakes_are_refused_with_the_key(compose, overrides, fragment):
    with pytest.raises(UserError) as excinfo:
        validated(compose(*overrides))
    assert fragment in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_an_unreadable_image_file_is_refused(compose, tmp_path):
    (tmp_path / "not-an-image.png").write_text("hello")
    with pytest.raises(UserError, match="not an image PIL can read"):
        validated(compose("attack=blended", "attack.pattern=file", f"attack.pattern_file={tmp_path / 'not-an-image.png'}"))


def test_attack_none_with_defense_none_is_valid(compose):
    run = validated(compose("attack=none", "defense=none"))
    assert run.attack.poison_rate == 0


def test_validating_every_attack_does_not_import_open_clip():
    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from bdunlearn.config import CONFIG_DIR\n"
        "from bdunlearn.plugins import register_configs\n"
        "from bdunlearn.preflight import validated\n"
        "register_configs()\n"
        "with initialize_config_dir(version_base='1.3', config_dir=str(CONFIG_DIR)):\n"
        "    for name in ('badnets', 'blended', 'wanet', 'sig', 'badclip', 'none'):\n"
        "        validated(compose('config', overrides=[f'attack={name}', 'defense=none']))\n"
        "assert 'open_clip' not in sys.modules, 'validation imported open_clip'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
