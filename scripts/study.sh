#!/usr/bin/env bash
# Run one of the shipped studies end to end: train its shadows (in parallel where the
# launcher allows), run its sweep, and summarize it.
#
#   scripts/study.sh study_shadow_count                      # on this machine, one job at a time
#   LAUNCHER=submitit_local scripts/study.sh study_attacks   # parallel processes on this machine
#   LAUNCHER=slurm PARTITION=gpu scripts/study.sh study_master task=simulate_cifar10   # also ACCOUNT, QOS, TIMEOUT_MIN
#   LAUNCHER=slurm SLURM_PRESET=slurm_cpu scripts/study.sh study_master   # CPU nodes (scripts/slurm_launch.sh)
#
# Extra arguments are mia overrides for every step (e.g. a task). The study's table,
# summary.csv and summary.png land in outputs/multirun/<study>/<date_time>/.
# Rerunning after an interruption trains only the shadows that are missing; the sweep's
# attacks are redone (they are deterministic and cheap next to the shadows).
set -euo pipefail

study=${1:?usage: scripts/study.sh study_shadow_count|study_master|study_attacks [mia overrides...]}
shift
case $study in
  study_shadow_count | study_attacks) default_count=16 ;;
  *) default_count=8 ;;
esac
COUNT=${COUNT:-$default_count}  # the largest shadow.count the study uses
LAUNCHER=${LAUNCHER:-basic}     # basic | submitit_local | slurm
SWEEP_DIR=${SWEEP_DIR:-outputs/multirun/$study/$(date +%Y-%m-%d_%H-%M-%S)}
MIA=${MIA:-mia}
export MIA_STORE=${MIA_STORE:-$PWD/outputs/store}

launch=()
case $LAUNCHER in
  basic) ;;
  submitit_local) launch=(hydra/launcher=submitit_local) ;;
  slurm) source "$(dirname "$0")/slurm_launch.sh" ;;  # launch=(hydra/launcher=slurm trainer=gpu ...)
  *) echo "LAUNCHER must be basic, submitit_local or slurm" >&2; exit 2 ;;
esac

if [[ $LAUNCHER == basic ]]; then
  "$MIA" stage=shadows shadow.count="$COUNT" "$@"
else
  "$MIA" -m stage=simulate "${launch[@]}" "$@"
  "$MIA" -m stage=shadows shadow.count="$COUNT" "shadow.only=range(0,$COUNT)" "${launch[@]}" "$@"
fi
"$MIA" -m experiment="$study" "hydra.sweep.dir=$SWEEP_DIR" "${launch[@]}" "$@"
"${MIA}-summarize" "$SWEEP_DIR"
