"""Running mia's sweeps on SLURM: the launcher's queue watchdog and its resource checks.

hydra-submitit-launcher waits for each job's result file and asks `sacct` for its state;
on a cluster without accounting a job that ends without a result (cancelled while
pending, killed) was waited for forever. This package watches `squeue` instead and turns
such a job, and an `sbatch` refusal, into one line. The Hydra plugin class that uses it is
`hydra_plugins.mia_slurm_launcher.MiaSlurmLauncher` (selected by `hydra/launcher=slurm`).
Nothing here imports torch: it runs in the launcher process on a login node.
"""
