#!/usr/bin/env bash
# GPU check, for a lent GPU machine (no internet; about 15 minutes of device time; `base` < 8 minutes, `scale` ~6):
# training throughput and model FLOPs utilisation for ViT-B/32 and ViT-L/14 (random weights, bf16, the
# task-arithmetic batch size of 128), batched triggers and the alpha scan on CUDA, one tiny end-to-end run, and
# the paths beyond one machine's memory and one GPU: streamed batches against a bare ImageFolder loader, a
# streamed pass in bounded memory with the streamed = in-memory fine-tune check, and torch.distributed (two
# ranks on the one GPU with gloo; one rank per GPU with NCCL where there are several) against one process, a
# whole streamed `bdunlearn` run in bounded memory, and `torchrun -m bdunlearn` on two GPUs where there are two.
# Every figure goes to stdout; copy them into results/benchmarks.md with the card's name.
#
#   bash scripts/device_check.sh            # from the repository root, with the project's dependencies installed
#   bash scripts/device_check.sh scale      # only the streaming and multi-process checks (about 6 minutes)
#   DEVICE=cpu bash scripts/device_check.sh scale   # their dry run on a machine without a GPU
#   bash scripts/device_check.sh base       # only the others
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
export BDUNLEARN_CACHE_DIR="${BDUNLEARN_CACHE_DIR:-/tmp/bdunlearn-device-cache}"
python -c "import bdunlearn" 2>/dev/null || python -m pip install -q --no-deps --no-build-isolation -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

step() { echo; echo "== $*"; timeout 150 "$@" || echo "!! failed or timed out: $*"; }
PART="${1:-all}"
if [ "$PART" != scale ]; then
step python scripts/bench_train.py --model ViT-B-32 --batch-size 128 --steps 30 --repeats 3 --device cuda --data-pipeline
step python scripts/bench_train.py --model ViT-L-14 --batch-size 128 --steps 10 --repeats 3 --device cuda
step python scripts/bench_train.py --model bdunlearn-tiny --batch-size 256 --steps 100 --repeats 3 --device cuda
step python scripts/bench_triggers.py --device cuda --batch-size 1024 --image-size 224
step python scripts/bench_alpha.py device=cuda
step bdunlearn device=cuda hydra.run.dir=/tmp/bdunlearn-device-run
cat /tmp/bdunlearn-device-run/result.json 2>/dev/null | head -30
fi
[ "$PART" = base ] && exit 0

# Beyond one machine's memory and one GPU. Decoding runs on the CPU cores. The memory cap must clear what torch
# itself takes (the process, its CUDA context and each worker: about 0.35 + 0.2 GB per worker on the CPU build):
# 1,500 MB with 2 workers, so the pass covers 99,650 files (15 GB decoded at 224 px; writing them is most of it).
step python scripts/bench_stream.py --count 8000 --workers 8 --batch-size 256 --repeats 2
echo; echo "== bench_stream_memory (up to 7 minutes)"
DEVICE="${DEVICE:-cuda}"
timeout 420 python scripts/bench_stream_memory.py --cap-mb 1500 --workers 2 --device "$DEVICE" || echo "!! failed or timed out: bench_stream_memory"
rm -rf /tmp/bdunlearn-ddp-check
step python scripts/ddp_check.py --device "$DEVICE"
step torchrun --standalone --nproc_per_node 2 scripts/ddp_check.py --device "$DEVICE" --backend gloo
GPUS=$(python -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$GPUS" -ge 2 ]; then step torchrun --standalone --nproc_per_node "$GPUS" scripts/ddp_check.py --backend nccl; fi
step python scripts/ddp_check.py --compare

# A whole `bdunlearn` run streamed in bounded memory (dataset.storage=auto against dataset.memory_budget_gb):
# the CUDA context adds host memory, hence a higher cap than the CPU's 2,000 MB (30 GB decoded at 224 px).
echo; echo "== bench_stream_run (up to 8 minutes)"
timeout 480 python scripts/bench_stream_run.py --cap-mb 3000 --workers 4 || echo "!! failed or timed out: bench_stream_run"
# The command itself under torchrun, one rank per GPU (NCCL), against the one-process run of the base part:
# one record, one cache entry per artifact, the same CA / ASR up to float rounding.
if [ "$GPUS" -ge 2 ]; then
  rm -rf /tmp/bdunlearn-device-ddp-cache /tmp/bdunlearn-device-ddp-run
  BDUNLEARN_CACHE_DIR=/tmp/bdunlearn-device-ddp-cache step torchrun --standalone --nproc_per_node 2 -m bdunlearn device=cuda \
    hydra.run.dir=/tmp/bdunlearn-device-ddp-run
  ls /tmp/bdunlearn-device-ddp-cache/*/ ; grep -h '"clean_acc\|"asr' /tmp/bdunlearn-device-run/result.json /tmp/bdunlearn-device-ddp-run/result.json
fi
