# Sourced by the scripts here: the mia overrides that send jobs to SLURM, from the
# environment (PARTITION, ACCOUNT, QOS, TIMEOUT_MIN; each optional), in the array `launch`.
launch=(hydra/launcher=slurm trainer=gpu)
[[ -n ${PARTITION:-} ]] && launch+=("hydra.launcher.partition=$PARTITION")
[[ -n ${ACCOUNT:-} ]] && launch+=("hydra.launcher.account=$ACCOUNT")
[[ -n ${QOS:-} ]] && launch+=("hydra.launcher.qos=$QOS")
[[ -n ${TIMEOUT_MIN:-} ]] && launch+=("hydra.launcher.timeout_min=$TIMEOUT_MIN")
true  # the last test above may be false; sourcing must not fail under `set -e`
