"""Register the structured config schema and mia's resolvers with Hydra (import once, before main)."""

from hydra.core.config_store import ConfigStore

from mia_lightning.config.resolvers import register_resolvers
from mia_lightning.config.schema import Config


def register() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)
    register_resolvers()
