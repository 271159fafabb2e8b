"""Drop-in use of rlspec's losses and advantage estimators inside other trainers.

* :mod:`rlspec.optimized.integrations.trl` — :class:`RLSpecGRPOTrainer`, TRL's ``GRPOTrainer`` with any
  registered policy loss (and outcome advantage) of rlspec.
* :mod:`rlspec.optimized.integrations.verl` — :func:`register_all` puts every rlspec policy loss and outcome
  advantage into verl's registries as ``rlspec_<name>``.

Neither framework is a dependency of rlspec: each module imports its framework when used. The registry
loader skips this package.
"""
