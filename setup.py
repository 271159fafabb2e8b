"""Package layout only (metadata is in pyproject.toml).

The repository keeps ``reference/ optimized/ conformance/`` at the top; they install as sub-packages of
``rlspec``, so a user's environment gains exactly one top-level package: ``rlspec``.
"""

from setuptools import find_packages, setup

LAYERS = ("reference", "optimized", "conformance")

packages = ["rlspec"]
package_dir = {"rlspec": "rlspec"}
for layer in LAYERS:
    package_dir[f"rlspec.{layer}"] = layer
    packages += [f"rlspec.{layer}"] + [f"rlspec.{layer}.{sub}" for sub in find_packages(layer)]

setup(packages=packages, package_dir=package_dir)
