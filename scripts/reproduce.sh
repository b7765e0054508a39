#!/usr/bin/env bash
# Rerun every claim, then regenerate results/ and RESULTS.md from the run records.
#   bash scripts/reproduce.sh standard   # full-data grid (configs/grid/standard.yaml): GPU hours, CPU days
#   bash scripts/reproduce.sh quick      # cheap CPU grid (configs/grid/quick.yaml)
# Resumable and cumulative: configs that already have a run record (results/records) are skipped, killed
# jobs resume from their checkpoints; `python scripts/run_grid.py <grid> --dry-run` prints what is left
# and a time estimate. A failed sweep or probe is reported and makes the script exit non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
GRID=${1:-standard}
case "$GRID" in standard|quick) ;; *) echo "usage: $0 standard|quick" >&2; exit 2 ;; esac
FAILED=()
step() { "$@" || FAILED+=("$*"); }

# training-free claims (seconds each); their outputs are committed under results/
for exp in even_drift even_erosion dilation_degeneration conv_arithmetic paper_tables; do
  step python train.py experiment=$exp logger=none hydra.run.dir=results/$exp
  rm -rf results/$exp/.hydra results/$exp/train.log results/$exp/checkpoints results/$exp/wandb
done

step python scripts/run_grid.py "$GRID"

# the drift and erosion probes on the trained even-kernel networks of this grid, at depth 20 and 56
for model in resnet20 resnet56; do
  ckpts="multirun/grid-$GRID/*/*/checkpoints/last.pt"
  suffix=$([ $model = resnet20 ] && echo "" || echo "_$model")
  step python train.py experiment=trained_drift logger=none hydra.run.dir=results/trained_drift$suffix \
    "probe.checkpoints=$ckpts" probe.model=$model
  for conv in c2 c2sp c3; do  # erosion of the seed-0 net of each kind
    ckpt=$(python -c "import glob; from omegaconf import OmegaConf as O
for c in sorted(glob.glob('$ckpts')):
    cfg = O.load(c.rsplit('/checkpoints/', 1)[0] + '/.hydra/config.yaml')
    if (cfg.get('experiment_name'), cfg.model.get('conv'), cfg.seed, cfg.model.name) == ('even_kernels', '$conv', 0, '$model'):
        print(c); break")
    [ -n "$ckpt" ] && step python train.py experiment=even_erosion logger=none probe.checkpoint=$ckpt \
      hydra.run.dir=results/even_erosion_trained$suffix/$conv
  done
done
rm -rf results/trained_drift*/{.hydra,train.log} results/even_erosion_trained*/*/{.hydra,train.log}

step python scripts/report.py --results-md RESULTS.md --readme README.md
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'reproduce: failed: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
