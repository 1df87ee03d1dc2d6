#!/usr/bin/env bash
# Unknown-attack replication on a lent GPU (no internet; about 6 minutes on an H200): DECREE and BTI-DBF, each with
# its default verdict, on CUDA for models no CPU table has seen (seeds 10-24 by default; BadNets, blended, WaNet
# and clean fine-tunes), in fp32 like the CPU recipe. Both sweeps run side by side through the joblib launcher and
# share theta_pre and each theta_b (file locks in the cache). The run dirs (records, configs, previews) are packed
# into one tarball for
#   python scripts/unknown_attack_table.py ... --replication DIR/decree DIR/bti_dbf --replication-note "..."
# BTI_ABLATIONS="pool_colours=false ..." adds one BTI-DBF sweep per listed setting (inversion.<setting>).
#
#   bash scripts/device_unknown_attack.sh OUT_DIR                  # from the repository root, dependencies installed
#   SEEDS=10,11 JOBS=2 DEVICE=cpu bash scripts/device_unknown_attack.sh /tmp/x model.pretrain.steps=30 ...   # a dry run
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: device_unknown_attack.sh OUT_DIR [OVERRIDES...]}"
shift
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
export BDUNLEARN_CACHE_DIR="${BDUNLEARN_CACHE_DIR:-/tmp/bdunlearn-device-cache}"
seeds="${SEEDS:-10,11,12,13,14,15,16,17,18,19,20,21,22,23,24}"
jobs="${JOBS:-6}"
device="${DEVICE:-cuda}"
limit="${LIMIT_S:-420}"  # each sweep stops here; the runs finished by then keep their records
python -c "import bdunlearn" 2>/dev/null || python -m pip install -q --no-deps --no-build-isolation -e . || exit 1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, open_clip; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'open_clip', open_clip.__version__)"

# sweeps: "dir:inversion [overrides]"; BTI_ABLATIONS adds BTI-DBF sweeps with other settings (e.g. "pool_colours=false")
sweeps=("decree:inversion=decree" "bti_dbf:inversion=bti_dbf")
for ablation in ${BTI_ABLATIONS:-}; do sweeps+=("bti_dbf-${ablation//[^a-zA-Z0-9._-]/-}:inversion=bti_dbf inversion.$ablation"); done
mkdir -p "$out"
started=$(date +%s)
for sweep in "${sweeps[@]}"; do
    name="${sweep%%:*}"
    # shellcheck disable=SC2086  # the sweep's overrides are words
    timeout "$limit" python -m bdunlearn -m attack=badnets,blended,wanet,none "seed=$seeds" defense=none attack_knowledge=unknown \
        ${sweep#*:} "device=$device" precision=fp32 logger.wandb.mode=disabled \
        hydra/launcher=joblib "hydra.launcher.n_jobs=$jobs" "hydra.sweep.dir=$out/$name" "$@" > "$out/$name.log" 2>&1 &
done
wait
echo "sweeps done in $(( $(date +%s) - started )) s"
for sweep in "${sweeps[@]}"; do
    name="${sweep%%:*}"
    echo "$name: $(ls "$out/$name"/*/result.json 2>/dev/null | wc -l) records; last lines of its log:"
    tail -n 3 "$out/$name.log"
done
tar czf "$out.tar.gz" -C "$(dirname "$out")" \
    $(cd "$(dirname "$out")" && find "$(basename "$out")" \( -name result.json -o -name config.yaml -o -name multirun.yaml \
      -o -name overrides.yaml -o -name inverted_trigger.png -o -name '*.log' \))
echo "packed $out.tar.gz ($(du -h "$out.tar.gz" | cut -f1))"
