"""Small end-to-end RL training runs built on :mod:`optimized` (CleanRL-style: every step readable).

A tiny random-init transformers model (:mod:`rlspec.optimized.e2e.models`) learns a synthetic verifiable
task on a 16-token vocabulary (:mod:`rlspec.optimized.e2e.tasks`) with any registered policy loss and any
outcome advantage estimator, looked up BY NAME in the registry (:mod:`rlspec.optimized.e2e.loop`).
:mod:`rlspec.optimized.e2e.matrix` runs every algorithm and writes a table and learning curves; the CPU
learning gate is ``tests/test_e2e_gate.py``. :mod:`rlspec.optimized.e2e.pipeline` plugs the registry's sampler /
curriculum entries into the loop's ``prompt_sampler`` / ``rollout_filter`` hooks. See ``docs/e2e.md``.

This subpackage needs ``transformers`` (the ``e2e`` extra); ``optimized`` itself does not import it.
"""

from rlspec.optimized.e2e.loop import History, recipe, train
from rlspec.optimized.e2e.tasks import TASKS, Task, get_task

__all__ = ["History", "recipe", "train", "TASKS", "Task", "get_task"]
