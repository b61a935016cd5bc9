"""Register the structured config schema with Hydra's ConfigStore (import once, before main)."""

from hydra.core.config_store import ConfigStore

from mia_lightning.config.schema import Config


def register() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)
    from mia_lightning.summarize import register_resolvers  # `mia.subdir`: sweep job dirs named by their overrides

    register_resolvers()
