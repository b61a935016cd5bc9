"""Lightning's and torch's advice kept out of the user's terminal: for the `mia` process and
for the processes it spawns (recipes/parallel.py)."""

from __future__ import annotations

import logging
import warnings


def quiet_libraries() -> None:
    """Keep Lightning's and torch's advice out of the user's terminal; real errors still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory.*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*Precision.*is not supported by the model summary.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    # Lightning 2.6 builds torch's deprecated LeafSpec at every fit (torch >= 2.10 warns each time)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
