"""Probes: frameworks run the way users run them (defaults, every accepted knob combination, the inputs they
take silently, padding as trainers have it, and a framework's own two paths against each other).

The adapter-based harness (:mod:`rlspec.conformance.harness`) asks "does this framework compute registry entry
X correctly under the conventions its adapter declares?". Probes ask what a user gets who calls the
framework's entry points directly: :mod:`rlspec.conformance.probes.core` holds the framework-agnostic
machinery (batches with finite garbage padding, metamorphic checks, reference comparison, the runner),
one module per framework (``verl``, ``trl``, ``openrlhf``, ``liger``, ``areal``) enumerates the probes, and
:mod:`rlspec.conformance.probes.findings` turns the outcomes (plus the harness's classified differences) into
``docs/findings.md``.
"""

FRAMEWORKS = ("verl", "trl", "openrlhf", "liger", "areal")
