"""``rlspec adapter new NAME``: a skeleton adapter module and an empty expectation file.

The module lists every implemented or partial registry entry as a commented-out ``run_<entry>``
method whose comment is the entry's input contract (:mod:`rlspec.conformance.contract`);
uncommenting a method declares the entry supported. The walk-through is ``docs/adapters.md``.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from pathlib import Path

from rlspec.conformance import contract

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name the adapter module (None if it can)."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        return f"NAME must be a Python identifier (letters, digits, _; not a keyword), got {name!r}"
    return None


def class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) + "Adapter"


def _method_name(entry: str) -> str:
    return "run_" + re.sub(r"\W", "_", entry)


def _entry_block(spec) -> list[str]:
    head = f"{spec.name} ({spec.kind}, {spec.status}): {spec.summary}"
    lines = ["    # " + w for w in textwrap.wrap(head, 100)]
    lines += [f"    #   {line}" for line in contract.text_lines(spec)]
    outs = [o["name"].split(".")[0] for o in contract.input_contract(spec)["outputs"]]
    ret = ", ".join(f'"{o}": ...' for o in dict.fromkeys(outs))
    lines += [f"    # def {_method_name(spec.name)}(self, inputs, config, dtype):",
              f"    #     return {{{ret}}}", ""]
    return lines


def module_text(name: str) -> str:
    """The skeleton adapter module for an implementation called ``name``."""
    from rlspec.reference import registry

    cls = class_name(name)
    specs = [s for s in registry.specs() if s.status in ("implemented", "partial")]
    head = f'''\
        """rlspec adapter for {name} (skeleton written by `rlspec adapter new {name}`).

        Check it with

            rlspec check {name}:{cls}

        run from this folder (or with it on PYTHONPATH); the expectation file {name}.txt beside this module
        is read by default. Walk-through: docs/adapters.md in rlspec.

        Every registry entry with a reference is listed below as a commented-out ``run_<entry>`` method
        whose comment is its input contract (``rlspec show ENTRY`` prints the same). Uncomment the methods
        your library implements: ``supports`` declares exactly those. In ``run_<entry>``, convert the NumPy
        inputs to your library's types in ``dtype``, call it, and return NumPy outputs named as listed
        (a gradient output is the autograd gradient of your loss w.r.t. that input). Raise
        ``Unsupported("why")`` for a case your library cannot express; never return a wrong value instead.
        """

        from __future__ import annotations

        import numpy as np  # noqa: F401

        from rlspec.conformance.adapters.base import Adapter, Unsupported  # noqa: F401


        class {cls}(Adapter):
            name = "{name}"
            version = "0"  # e.g. rlspec.conformance.adapters.base.framework_version("your-distribution")
            dtypes = ("float64", "float32")  # the precisions your library computes in; add "bfloat16" if it does
            # your library's documented defaults that differ from the paper's, per entry, e.g.
            # {{"grpo": {{"ddof": 1, "eps": 1e-6}}}}: the reference runs with them too (docs/adapters.md says
            # what a declared default hides)
            conventions: dict = {{}}

            def available(self):
                """(True, "") if your library imports; else (False, why)."""
                return True, ""

            def supports(self, spec) -> bool:
                return callable(getattr(self, "run_" + spec.name, None))

            def run(self, spec, inputs, config, dtype):
                return getattr(self, "run_" + spec.name)(inputs, config, dtype)

            def reproduction(self, spec, inputs, config, dtype) -> str:
                """Optional: a snippet that reproduces one case with only your library installed."""
                return ""

            # ----------------------------------------------------------------- registry entries ({len(specs)})
        '''
    lines = textwrap.dedent(head).splitlines()
    for spec in specs:
        lines += _entry_block(spec)
    return "\n".join(lines).rstrip() + "\n"


def expectation_text(name: str) -> str:
    return textwrap.dedent(f"""\
        # Expectation file of {name}: known differences from the reference, one per line.
        #   CASE-ID-OR-GLOB          xfail|deviation   reason or upstream link
        # xfail = a bug (link the issue); deviation = differs from the paper by design (say where it is documented).
        # Case ids are those of the report (e.g. grpo/float32/singletons); globs use fnmatch and apply only to
        # cases that differ. `rlspec check {name}:{class_name(name)}` reads this file (beside {name}.py) by default;
        # `rlspec expectations --from reports/.../report.json` drafts its lines from a report.
        """)


def write(name: str, out: Path, force: bool = False) -> tuple[Path, Path]:
    """Write ``out/NAME.py`` and ``out/NAME.txt``; FileExistsError if either exists (unless ``force``)."""
    module, expect = out / f"{name}.py", out / f"{name}.txt"
    for p in (module, expect):
        if p.exists() and not force:
            raise FileExistsError(f"{p} exists (use --force to overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    module.write_text(module_text(name), encoding="utf-8")
    expect.write_text(expectation_text(name), encoding="utf-8")
    return module, expect
