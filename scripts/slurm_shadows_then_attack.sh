#!/usr/bin/env bash
# Train COUNT shadows as one SLURM array (one job per shadow), then attack with all of them.
#
#   PARTITION=gpu ACCOUNT=myproj MIA_STORE=/shared/mia-store \
#     scripts/slurm_shadows_then_attack.sh experiment=tml25 task.pub=$PWD/pub.pt task.priv=$PWD/priv_out.pt task.target=$PWD/01_MIA.pt
#   SLURM_PRESET=slurm_cpu scripts/slurm_shadows_then_attack.sh hydra.launcher.cpus_per_task=2 hydra.launcher.mem_gb=4   # CPU nodes
#
# Extra arguments are mia overrides, passed to every step (they must give the same task
# and shadow recipe in each, so that all steps use the same store entry). Environment:
# COUNT (64), MIA_STORE, SLURM_PRESET / PARTITION / ACCOUNT / QOS / TIMEOUT_MIN
# (scripts/slurm_launch.sh), SWEEP_DIR (where the three steps' job dirs go; default
# $MIA_OUTPUTS/multirun/slurm_shadows_then_attack/<date_time>, MIA_OUTPUTS defaulting to
# outputs). Run it from a login node inside tmux/screen: with a SLURM launcher,
# `mia -m ...` submits the jobs and waits until all of them have ended.
#
# Interruptions (README, "Clusters (SLURM)"): a job that gets USR2 (submitit's time-limit
# warning, `scancel --signal=USR2`) requeues itself; one that gets SIGTERM (a preemption,
# `scontrol requeue`, scancel) exits 143 and is requeued only where SLURM requeues it
# (PreemptMode=REQUEUE). A requeued job reruns the same `mia` command, which resumes its
# shadow from checkpoints/last.ckpt in the store (at most one epoch is lost). A job that
# ends without a result fails the step with one line. Rerun the script after any failure:
# finished shadows are skipped.
set -euo pipefail

COUNT=${COUNT:-64}
export MIA_STORE=${MIA_STORE:-$PWD/outputs/store}  # on a filesystem every node sees
MIA=${MIA:-mia}
SWEEP_DIR=${SWEEP_DIR:-${MIA_OUTPUTS:-outputs}/multirun/slurm_shadows_then_attack/$(date +%Y-%m-%d_%H-%M-%S)}

source "$(dirname "$0")/slurm_launch.sh"  # launch=(hydra/launcher=slurm trainer=gpu ...)

echo "store: $MIA_STORE"
echo "jobs: $SWEEP_DIR/{simulate,shadows,attacks}"
# 0. the task (simulated once, or just checked), so the array's jobs do not all wait on it
"$MIA" -m stage=simulate "${launch[@]}" "$@" "hydra.sweep.dir=$SWEEP_DIR/simulate"
# 1. the shadows: array task i trains shadow i (a shadow already done is skipped)
"$MIA" -m stage=shadows shadow.count="$COUNT" "shadow.only=range(0,$COUNT)" "${launch[@]}" "$@" \
  "hydra.sweep.dir=$SWEEP_DIR/shadows"
# 2. the attacks on the stored logits of all COUNT shadows, as one more job
#    (locally instead: mia stage=attacks shadow.count=$COUNT ...)
"$MIA" -m stage=attacks shadow.count="$COUNT" "${launch[@]}" "$@" "hydra.sweep.dir=$SWEEP_DIR/attacks"
echo "done: metrics.json, roc*.png and submission.csv are in $SWEEP_DIR/attacks/0/"
