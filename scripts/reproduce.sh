#!/usr/bin/env bash
# Rerun every claim, then regenerate results/ and RESULTS.md.
#   bash scripts/reproduce.sh quick    # 2-core CPU budget (CIFAR-10 JPEG copy, 10k images, 8 epochs)
#   bash scripts/reproduce.sh paper    # the papers' schedules (GPU; full grids)
# Resumable: every sweep has a fixed dir (multirun/<experiment>-<profile>); rerunning skips finished
# jobs (trainer.skip_finished=true) and resumes killed ones from their checkpoints/last.pt.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-quick}
case "$PROFILE" in quick|paper) ;; *) echo "usage: $0 quick|paper" >&2; exit 2 ;; esac

# training-free claims (seconds each); their outputs are committed under results/
for exp in even_drift even_erosion dilation_degeneration conv_arithmetic; do
  python train.py experiment=$exp logger=none hydra.run.dir=results/$exp
  rm -rf results/$exp/.hydra results/$exp/train.log results/$exp/checkpoints results/$exp/wandb
done

COMMON=(profile=$PROFILE trainer.skip_finished=true)
if [ "$PROFILE" = quick ]; then
  # 2 jobs at a time, one thread each (faster than one 2-thread job on 2 cores for these small nets)
  COMMON+=(hydra/launcher=parallel trainer.threads=1)
  # budget cuts of the quick profile (stated in RESULTS.md through the run configs):
  EVEN=(model.name=resnet20)                                   # depth 56 left to the paper profile
  BLUR=(model.filt_size=1,3,5 evaluators.shift.max_images=2000)  # 3 of 6 filters, 2000 test images
  RED=(model.kernel_size=3)                                   # K=5,7 are 2-4x slower on CPU
else
  EVEN=(); BLUR=(); RED=()
fi
sweep() {  # sweep <experiment> <dir name> [overrides...]
  local exp=$1 dir=$2; shift 2
  python train.py -m experiment=$exp "${COMMON[@]}" "$@" hydra.sweep.dir=multirun/$dir-$PROFILE || true
}
sweep even_kernels even_kernels "${EVEN[@]}"
sweep blurpool blurpool "${BLUR[@]}"
sweep octave octave
sweep rednet_baseline rednet_baseline
sweep rednet rednet "${RED[@]}"

# the drift and erosion probes on the trained even-kernel networks
python train.py experiment=trained_drift logger=none hydra.run.dir=results/trained_drift \
  "probe.checkpoints=multirun/even_kernels-$PROFILE/*/checkpoints/last.pt"
for conv in c2 c2sp c3; do  # erosion of the seed-0 net of each kind
  ckpt=$(python -c "import sys, glob; from omegaconf import OmegaConf as O
for d in sorted(glob.glob('multirun/even_kernels-$PROFILE/*/')):
    c = O.load(d + '.hydra/config.yaml')
    if c.model.conv == '$conv' and c.seed == 0 and c.model.name == 'resnet20': print(d + 'checkpoints/last.pt'); break")
  [ -n "$ckpt" ] && python train.py experiment=even_erosion logger=none probe.checkpoint=$ckpt \
    hydra.run.dir=results/even_erosion_trained/$conv
done
rm -rf results/trained_drift/{.hydra,train.log} results/even_erosion_trained/*/{.hydra,train.log}

python scripts/report.py multirun/*-$PROFILE --out results --results-md RESULTS.md --readme README.md
