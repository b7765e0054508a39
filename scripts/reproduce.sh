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
step() { "$@" || { FAILED+=("$*"); return 1; }; }

# training-free claims (seconds each); their outputs are committed under results/
for exp in even_drift even_erosion dilation_degeneration conv_arithmetic paper_tables; do
  step python train.py experiment=$exp logger=none hydra.run.dir=results/$exp
  rm -rf results/$exp/.hydra results/$exp/train.log results/$exp/checkpoints results/$exp/wandb
done

step python scripts/run_grid.py "$GRID"

# the drift and erosion probes on trained even-kernel nets of this profile, at depth 20 and 56: the nets of
# configs/grid/probe_nets.yaml (checkpoints, which committed records do not carry) and any the grid trained
# here (run_grid keeps each job's checkpoint in multirun/grid-<name>/<hash>/checkpoints/last.pt; the probes
# count each config once and only finished runs)
step python scripts/run_grid.py probe_nets --profile "$GRID"
for model in resnet20 resnet56; do
  suffix=_$GRID$([ $model = resnet20 ] || echo "_$model")
  for probe in trained_drift trained_erosion; do
    # the committed output may have read other nets (its run dir would refuse these): set it aside outside
    # results/, put it back if the probe fails (a failed probe leaves no output for the report to read)
    out=results/$probe$suffix; keep=multirun/.kept-$probe$suffix
    [ -d "$keep" ] && { rm -rf "$out"; mv "$keep" "$out"; }  # left by an interrupted earlier run
    [ -d "$out" ] && mkdir -p multirun && mv "$out" "$keep"
    if step python train.py experiment=$probe logger=none hydra.run.dir="$out" \
         "probe.checkpoints='multirun/grid-*/*/checkpoints/last.pt'" probe.model=$model probe.profile=$GRID; then
      rm -rf "$keep" "$out"/{.hydra,train.log}
    else
      rm -rf "$out"; [ -d "$keep" ] && mv "$keep" "$out"
    fi
  done
done

step python scripts/report.py --results-md RESULTS.md --readme README.md
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'reproduce: failed: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
