# Sourced by the scripts here: the mia overrides that send jobs to SLURM, from the
# environment (each optional), in the array `launch`:
#   SLURM_PRESET  slurm (default: a GPU per job, trainer=gpu) or slurm_cpu (CPU-only or
#                 small nodes: no GPU, 4 CPUs / 8 GB per job, trainer=cpu)
#   PARTITION, ACCOUNT, QOS, TIMEOUT_MIN   hydra.launcher.partition / account / qos / timeout_min
case ${SLURM_PRESET:-slurm} in
  slurm) launch=(hydra/launcher=slurm trainer=gpu) ;;
  slurm_cpu) launch=(hydra/launcher=slurm_cpu trainer=cpu) ;;
  *) echo "SLURM_PRESET must be slurm or slurm_cpu, not '$SLURM_PRESET'" >&2; exit 2 ;;
esac
[[ -n ${PARTITION:-} ]] && launch+=("hydra.launcher.partition=$PARTITION")
[[ -n ${ACCOUNT:-} ]] && launch+=("hydra.launcher.account=$ACCOUNT")
[[ -n ${QOS:-} ]] && launch+=("hydra.launcher.qos=$QOS")
[[ -n ${TIMEOUT_MIN:-} ]] && launch+=("hydra.launcher.timeout_min=$TIMEOUT_MIN")
true  # the last test above may be false; sourcing must not fail under `set -e`
