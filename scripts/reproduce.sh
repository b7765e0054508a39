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
for exp in even_drift even_erosion dilation_degeneration conv_arithmetic paper_tables; do
  python train.py experiment=$exp logger=none hydra.run.dir=results/$exp
  rm -rf results/$exp/.hydra results/$exp/train.log results/$exp/checkpoints results/$exp/wandb
done

COMMON=(profile=$PROFILE trainer.skip_finished=true)
QUICK=false
if [ "$PROFILE" = quick ]; then
  QUICK=true
  # 2 jobs at a time, one thread each (faster than one 2-thread job on 2 cores for these small nets)
  COMMON+=(hydra/launcher=parallel trainer.threads=1)
  # budget cuts of the quick profile (stated in RESULTS.md through the run configs):
  EVEN=(model.name=resnet20)                                     # every kernel at depth 20 only
  SHIFT=(evaluators.shift.max_images=2000)                       # consistency on 2000 test images
  BLUR=(model.filt_size=1,3,5 "${SHIFT[@]}")                     # both augment settings
  VGG=(model.filt_size=1,3 data.augment=false "${SHIFT[@]}")
else
  EVEN=(); BLUR=(); VGG=()                                       # the experiments' full grids
fi
sweep() {  # sweep <experiment> <dir name> [overrides...]
  local exp=$1 dir=$2; shift 2
  python train.py -m experiment=$exp "${COMMON[@]}" "$@" hydra.sweep.dir=multirun/$dir-$PROFILE || true
}
sweep even_kernels even_kernels "${EVEN[@]}"
if $QUICK; then
  sweep even_kernels even_kernels38 model.name=resnet38 model.conv=c3  # C2sp-56 has 32% fewer params
  sweep even_kernels even_kernels56 model.name=resnet56 model.conv=c2,c2sp,c3  # the gap vs depth
  sweep blurpool blurpool_noaug model.filt_size=2,4,7 data.augment=false "${SHIFT[@]}"
fi
sweep blurpool blurpool "${BLUR[@]}"
sweep blurpool blurpool_vgg model=vgg13_bn model.downsample=maxblur "${VGG[@]}"
sweep octave octave
sweep rednet_baseline rednet_baseline
sweep rednet rednet  # K = 3, 5, 7

# the drift and erosion probes on the trained even-kernel networks, at depth 20 and 56
for model in resnet20 resnet56; do
  dir=multirun/even_kernels-$PROFILE
  $QUICK && [ $model = resnet56 ] && dir=multirun/even_kernels56-$PROFILE
  suffix=$([ $model = resnet20 ] && echo "" || echo "_$model")
  python train.py experiment=trained_drift logger=none hydra.run.dir=results/trained_drift$suffix \
    "probe.checkpoints=$dir/*/checkpoints/last.pt" probe.model=$model || true
  for conv in c2 c2sp c3; do  # erosion of the seed-0 net of each kind
    ckpt=$(python -c "import glob; from omegaconf import OmegaConf as O
for d in sorted(glob.glob('$dir/*/')):
    c = O.load(d + '.hydra/config.yaml')
    if c.model.conv == '$conv' and c.seed == 0 and c.model.name == '$model': print(d + 'checkpoints/last.pt'); break")
    [ -n "$ckpt" ] && python train.py experiment=even_erosion logger=none probe.checkpoint=$ckpt \
      hydra.run.dir=results/even_erosion_trained$suffix/$conv
  done
done
rm -rf results/trained_drift*/{.hydra,train.log} results/even_erosion_trained*/*/{.hydra,train.log}

python scripts/report.py multirun/*-$PROFILE --out results --results-md RESULTS.md --readme README.md
