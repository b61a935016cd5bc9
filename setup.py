"""Which files the package is built from (the rest of the metadata is in pyproject.toml).

`conf/` stays at the top of the repository (Hydra's config tree, where users read it) and
ships inside the package as `mia_lightning/_conf`, so a wheel or a non-editable
`pip install .` gives a `mia` with its configs (app.py looks there when no checkout's
conf/ sits next to the package). The benchmarks live in `benchmarks/`, outside the
runtime package, and install as `mia_benchmarks` for the `mia-bench` command.
"""

from setuptools import find_namespace_packages, find_packages, setup

setup(
    # hydra_plugins is a namespace package shared with other Hydra plugins (no __init__.py):
    # found as a namespace, so that Hydra's plugin scan sees mia's launcher in editable installs too
    packages=[*find_packages(include=["mia_lightning", "mia_lightning.*"]),
              *find_namespace_packages(include=["hydra_plugins", "hydra_plugins.*"]), "mia_lightning._conf", "mia_benchmarks"],
    package_dir={"mia_lightning._conf": "conf", "mia_benchmarks": "benchmarks"},
    package_data={"mia_lightning._conf": ["*.yaml", "**/*.yaml"]},
)
