#!/usr/bin/env bash
# GPU check, for a lent GPU machine (no internet; about 15 minutes of device time, this script < 8 minutes):
# training throughput and model FLOPs utilisation for ViT-B/32 and ViT-L/14 (random weights, bf16, the
# task-arithmetic batch size of 128), batched triggers and the alpha scan on CUDA, and one tiny end-to-end run.
# Every figure goes to stdout; copy them into results/benchmarks.md with the card's name.
#
#   bash scripts/device_check.sh            # from the repository root, with the project's dependencies installed
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
export BDUNLEARN_CACHE_DIR="${BDUNLEARN_CACHE_DIR:-/tmp/bdunlearn-device-cache}"
python -c "import bdunlearn" 2>/dev/null || python -m pip install -q --no-deps --no-build-isolation -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

step() { echo; echo "== $*"; timeout 150 "$@" || echo "!! failed or timed out: $*"; }
step python scripts/bench_train.py --model ViT-B-32 --batch-size 128 --steps 30 --repeats 3 --device cuda --data-pipeline
step python scripts/bench_train.py --model ViT-L-14 --batch-size 128 --steps 10 --repeats 3 --device cuda
step python scripts/bench_train.py --model bdunlearn-tiny --batch-size 256 --steps 100 --repeats 3 --device cuda
step python scripts/bench_triggers.py --device cuda --batch-size 1024 --image-size 224
step python scripts/bench_alpha.py device=cuda
step bdunlearn device=cuda hydra.run.dir=/tmp/bdunlearn-device-run
cat /tmp/bdunlearn-device-run/result.json 2>/dev/null | head -30
