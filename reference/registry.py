"""The registry: the one list of every algorithm rlspec knows.

Stable API (the CLI, conformance, the docs and outside tools use it)::

    from rlspec.reference import registry
    registry.names()                  # sorted list of names
    spec = registry.get("grpo")       # unknown name -> KeyError listing close matches
    spec.name, spec.kind, spec.status, spec.paper.arxiv, spec.paper.title, spec.paper.year
    spec.provenance                   # {equation label: "paper" | "official-code" | "secondary" | "reconstructed"}
    spec.config(**overrides)          # frozen dataclass whose defaults are the paper's
    spec(...)                         # calls the reference function with the kind's signature

Call signatures per kind (all arrays NumPy, float64 on return):

* ``policy_loss``: ``spec(logp=, old_logp=, adv=, mask=, ref_logp=None, config=None) -> (loss, dlogp)``
  with ``dlogp = ∂loss/∂logp`` of shape (B, T), zero at masked positions.
* ``value_loss`` (critic): ``spec(values=, old_values=, returns=, mask=, config=None) -> (loss, dvalues)``
  with ``dvalues = ∂loss/∂values`` of shape (B, T), zero at masked positions; ``values`` are the critic's
  current predictions, ``old_values`` its predictions when the batch was collected, ``returns`` the targets.
* ``advantage``: ``spec(rewards=, group=, mask=, config=None) -> adv`` of shape (B, T), zero at masked positions.
* ``kl``: ``spec(logp=, ref_logp=, mask=, config=None) -> (loss, dlogp)`` (the estimator used as a loss).
* ``entropy``: ``spec(logits=, mask=, config=None) -> (value, dlogits)``.
* ``reward``: ``spec(**inputs, config=None) -> rewards`` — inputs documented per entry.
* ``tracker``: ``spec(state=, rewards=, ..., config=None) -> (adv, new_state)`` — state is a frozen dataclass.
* ``sampler``/``curriculum``: ``spec(**inputs, config=None) -> weights or selection`` — documented per entry.
* ``tabular``: ``spec(**inputs, config=None) -> dict`` — small exact problems (``reference/envs``).

Every reference module registers its entries by calling :func:`register` at import. Papers of the
mission that are not built yet stay visible as ``planned`` entries from :mod:`rlspec.reference.catalogue`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("policy_loss", "value_loss", "advantage", "kl", "entropy", "reward", "tracker", "sampler", "curriculum",
         "tabular")
STATUSES = ("implemented", "partial", "planned")
SOURCES = ("paper", "official-code", "secondary", "reconstructed")


class PlannedAlgorithmError(LookupError):
    """Raised when a ``planned`` entry (no reference implementation yet) is called."""


@dataclass(frozen=True)
class Paper:
    """Bibliographic identity of the paper an entry implements."""

    arxiv: str  # e.g. "2402.03300"; "" for sources without an arXiv id (then ``url`` is set)
    title: str
    year: int
    url: str = ""

    @property
    def link(self) -> str:
        return self.url or f"https://arxiv.org/abs/{self.arxiv}"


@dataclass(frozen=True)
class Equation:
    """One equation an entry implements, with where it was confirmed.

    ``where`` is the paper's section / equation number; ``source`` is one of
    :data:`SOURCES`; ``note`` says what was checked and any disagreement.
    """

    label: str
    text: str
    where: str
    source: str
    function: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Equation.source: got {self.source!r}; expected one of {SOURCES}")


@dataclass(frozen=True)
class Spec:
    """A registry entry. Call it like the reference function of its kind."""

    name: str
    kind: str
    paper: Paper
    status: str = "planned"
    summary: str = ""
    fn: Callable[..., Any] | None = None
    config_cls: type | None = None
    equations: tuple[Equation, ...] = ()
    gradient: str = ""  # the hand-derived gradient, in words and symbols
    properties: tuple[str, ...] = ()  # claims tested in properties/, "test id: claim"
    missing: str = ""  # for ``partial`` / ``planned``: what is not built yet
    family: str = ""  # e.g. "ratio/clipping", "advantage", "classic-rl"
    aliases: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # names of the returned values, for reports and vectors
    make_inputs: Callable[..., dict] | None = None  # rng -> example inputs (kinds without a default)
    extras: Mapping[str, Callable[..., Any]] = field(default_factory=dict)  # helper functions (init_state, ...)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Spec.kind: got {self.kind!r}; expected one of {KINDS}")
        if self.status not in STATUSES:
            raise ValueError(f"Spec.status: got {self.status!r}; expected one of {STATUSES}")
        if self.status != "planned" and self.fn is None:
            raise ValueError(f"Spec {self.name!r}: status {self.status!r} needs a reference function")
        if self.status != "implemented" and not self.missing:
            raise ValueError(f"Spec {self.name!r}: status {self.status!r} must say what is missing")

    @property
    def provenance(self) -> dict[str, str]:
        """Equation label -> where it was confirmed (paper / official-code / secondary / reconstructed)."""
        return {e.label: e.source for e in self.equations}

    def config(self, **overrides: Any) -> Any:
        """The entry's config with the paper's defaults, fields replaced by ``overrides``."""
        if self.config_cls is None:
            if overrides:
                raise ValueError(f"{self.name}: has no config; got overrides {sorted(overrides)}")
            return None
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{self.name}.config: unknown field(s) {unknown}; expected some of {sorted(known)}")
        return self.config_cls(**overrides)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            raise PlannedAlgorithmError(
                f"{self.name} ({self.paper.title}, arXiv {self.paper.arxiv}) is planned: no reference implementation yet"
            )
        if kwargs.get("config") is None and self.config_cls is not None:
            kwargs["config"] = self.config_cls()
        return self.fn(*args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (used by ``rlspec list --json`` and the docs)."""
        cfg = {}
        if self.config_cls is not None:
            cfg = {f.name: _jsonable(getattr(self.config_cls(), f.name)) for f in dataclasses.fields(self.config_cls)}
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "family": self.family,
            "summary": self.summary,
            "paper": {"arxiv": self.paper.arxiv, "title": self.paper.title, "year": self.paper.year,
                      "link": self.paper.link},
            "provenance": self.provenance,
            "equations": [dataclasses.asdict(e) for e in self.equations],
            "gradient": self.gradient,
            "properties": list(self.properties),
            "config": cfg,
            "missing": self.missing,
            "aliases": list(self.aliases),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return repr(v)


_ENTRIES: dict[str, Spec] = {}
_ALIASES: dict[str, str] = {}
_LOADED = False


def register(spec: Spec) -> Spec:
    """Add ``spec``; an implemented/partial entry replaces a planned one of the same name."""
    old = _ENTRIES.get(spec.name)
    if old is not None and old.status != "planned" and old is not spec:
        raise ValueError(f"registry: {spec.name!r} is registered twice")
    _ENTRIES[spec.name] = spec
    for a in spec.aliases:
        _ALIASES[a] = spec.name
    return spec


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from rlspec.reference import catalogue  # planned entries first, so modules can replace them

    for spec in catalogue.planned_specs():
        if spec.name not in _ENTRIES:
            _ENTRIES[spec.name] = spec
    from rlspec import reference

    for info in pkgutil.iter_modules(reference.__path__):
        if not info.name.startswith("_") and info.name not in ("registry", "catalogue", "cli"):
            importlib.import_module(f"rlspec.reference.{info.name}")


def names(kind: str | None = None, status: str | None = None) -> list[str]:
    """Sorted names of all entries, optionally only of one kind and/or status."""
    _load()
    return sorted(n for n, s in _ENTRIES.items()
                  if (kind is None or s.kind == kind) and (status is None or s.status == status))


def get(name: str) -> Spec:
    """The entry called ``name`` (or one of its aliases); KeyError with close matches otherwise."""
    _load()
    key = _ALIASES.get(name, name)
    if key in _ENTRIES:
        return _ENTRIES[key]
    pool = list(_ENTRIES) + list(_ALIASES)
    close = difflib.get_close_matches(name, pool, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_ENTRIES))}"
    raise KeyError(f"no algorithm named {name!r}{hint}")


def specs(kind: str | None = None, status: str | None = None) -> list[Spec]:
    """The entries themselves, in name order."""
    return [_ENTRIES[n] for n in names(kind, status)]
