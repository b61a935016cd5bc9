"""mia's SLURM launcher: hydra-submitit-launcher's, plus a queue watchdog and resource checks.

Hydra instantiates launchers only from the `hydra_plugins` package, so the class lives
here; the logic is in `mia_lightning.cluster` (imported only when a sweep is launched,
which keeps Hydra's plugin scan fast). `conf/hydra/launcher/slurm.yaml` selects it.
"""
# (no `from __future__ import annotations`: Hydra's plugin scan runs this module before it
# is in sys.modules, where @dataclass would look its string annotations up)
from dataclasses import dataclass
from typing import Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


@dataclass
class MiaSlurmQueueConf(SlurmQueueConf):
    """submitit_slurm's settings plus how the launcher watches the queue."""

    _target_: str = "hydra_plugins.mia_slurm_launcher.MiaSlurmLauncher"
    # how often `squeue` is asked whether each job is still queued or running (seconds)
    queue_check_s: int = 30
    # a job out of the queue (or in a final state) this long with no result file is failed
    # (one line, exit 1) instead of waited for forever: cancelled while pending, killed, ...
    vanished_after_s: int = 60


ConfigStore.instance().store(group="hydra/launcher", name="mia_submitit_slurm", node=MiaSlurmQueueConf(),
                             provider="mia_lightning")


class MiaSlurmLauncher(SlurmLauncher):
    """Submits like submitit_slurm; waits until every job has a result or has left the queue."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from mia_lightning.cluster.launch import launch_and_wait

        return launch_and_wait(self, job_overrides, initial_job_idx)
