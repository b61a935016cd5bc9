#!/usr/bin/env bash
# Train COUNT shadows as one SLURM array (one GPU per shadow), then attack with all of them.
#
#   PARTITION=gpu ACCOUNT=myproj MIA_STORE=/shared/mia-store \
#     scripts/slurm_shadows_then_attack.sh experiment=tml25 task.pub=$PWD/pub.pt task.priv=$PWD/priv_out.pt task.target=$PWD/01_MIA.pt
#
# Extra arguments are mia overrides, passed to every step (they must give the same task
# and shadow recipe in each, so that all steps use the same store entry). Run it from a
# login node inside tmux/screen: with hydra/launcher=slurm, `mia -m ...` submits the jobs
# and waits until all of them have ended.
#
# Preemption and time limits: hydra-submitit-launcher requeues a job that is preempted or
# about to hit its time limit (submitit's USR2 handler, `hydra.launcher.signal_delay_s`
# before the limit; at most `max_num_timeout` requeues for time-outs). The requeued job
# reruns the same `mia` command, which resumes its shadow from checkpoints/last.ckpt in
# the store (at most one epoch is lost). Lightning's own SLURM auto-requeue listens on
# SIGUSR1, which submitit never sends, so submitit is the only one requeueing.
# If the whole script is interrupted, run it again: finished shadows are skipped.
set -euo pipefail

COUNT=${COUNT:-64}
export MIA_STORE=${MIA_STORE:-$PWD/outputs/store}  # on a filesystem every node sees
MIA=${MIA:-mia}

source "$(dirname "$0")/slurm_launch.sh"  # launch=(hydra/launcher=slurm trainer=gpu ...)

echo "store: $MIA_STORE"
# 0. the task (simulated once, or just checked), so the array's jobs do not all wait on it
"$MIA" -m stage=simulate "${launch[@]}" "$@"
# 1. the shadows: array task i trains shadow i (a shadow already done is skipped)
"$MIA" -m stage=shadows shadow.count="$COUNT" "shadow.only=range(0,$COUNT)" "${launch[@]}" "$@"
# 2. the attacks on the stored logits of all COUNT shadows, as one more GPU job
#    (locally instead: mia stage=attacks shadow.count=$COUNT ...)
"$MIA" -m stage=attacks shadow.count="$COUNT" "${launch[@]}" "$@"
echo "done: metrics.json, roc*.png and submission.csv are in the last outputs/multirun/<date>/<time>/0/"
