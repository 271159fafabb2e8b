"""The documentation site (tox -e docs): mkdocs build --strict, a page per built entry, math marked up, images present.

Skipped unless mkdocs, mkdocs-material and pymdown-extensions are installed (they are not test dependencies)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("pymdownx")
pytest.importorskip("mkdocstrings")

DOCS = Path(__file__).resolve().parent.parent / "docs"


class _Page(HTMLParser):
    """Image sources, and the text outside code and arithmatex elements."""

    SKIP = {"code", "pre", "script", "style"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.text: list[str] = []
        self._stack: list[bool] = []  # per open element: does it hide its text?

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag in ("img", "br", "hr", "meta", "link", "input", "source"):
            return
        hide = tag in self.SKIP or "arithmatex" in (a.get("class") or "").split()
        self._stack.append(hide or (bool(self._stack) and self._stack[-1]))

    def handle_endtag(self, tag):
        if self._stack and tag not in ("img", "br", "hr", "meta", "link", "input", "source"):
            self._stack.pop()

    def handle_data(self, data):
        if not (self._stack and self._stack[-1]):
            self.text.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from rlspec.conformance import site as site_mod

    tmp = tmp_path_factory.mktemp("site")
    return site_mod.build_site(tmp / "site", src_dir=tmp / "src", strict=True, log=lambda _m: None)


def _pages(site: Path) -> list[Path]:
    return [p for p in site.rglob("*.html") if "assets" not in p.parts]


def test_every_built_entry_has_a_page(site):
    from rlspec.reference import registry

    for spec in registry.specs():
        if spec.status != "planned":
            assert (site / "algorithms" / f"{spec.name}.html").is_file(), spec.name
    assert (site / "families" / "ratio.html").is_file()
    assert (site / "index.html").is_file() and (site / "search" / "search_index.json").is_file()


def test_figures_embedded(site):
    from rlspec.conformance import site as site_mod

    for spec in site_mod.ratio_figure_specs():
        html = (site / "algorithms" / f"{spec.name}.html").read_text(encoding="utf-8")
        assert f"fig/{spec.name}-ratio.png" in html, spec.name
    for spec in site_mod.outcome_advantage_specs():
        html = (site / "algorithms" / f"{spec.name}.html").read_text(encoding="utf-8")
        assert f"fig/{spec.name}-example.png" in html, spec.name


def test_math_marked_up_and_katex_shipped(site):
    html = (site / "families" / "ratio.html").read_text(encoding="utf-8")
    assert 'class="arithmatex"' in html
    assert (site / "assets" / "katex" / "katex.min.js").is_file()
    assert not re.search(r"https?://[^\"']*(katex|mathjax)", html, re.I)  # no CDN
    for page in _pages(site):
        parser = _Page()
        parser.feed(page.read_text(encoding="utf-8"))
        text = "".join(parser.text)
        for raw in ("$$", "\\(", "\\[", "\\)", "\\]"):
            assert raw not in text, f"{page.relative_to(site)}: raw TeX {raw!r} outside arithmatex markup"


def test_every_image_exists(site):
    missing = []
    for page in _pages(site):
        parser = _Page()
        parser.feed(page.read_text(encoding="utf-8"))
        for src in parser.images:
            if re.match(r"^[a-z]+:", src):
                continue
            if not (page.parent / src.split("#")[0].split("?")[0]).resolve().is_file():
                missing.append(f"{page.relative_to(site)} -> {src}")
    assert not missing, missing


def test_family_pages(site):
    """The aggregation and group-advantage family pages exist, embed their figures and list every estimator."""
    from rlspec.conformance import site as site_mod

    for page, img in (("aggregation", "aggregation.png"), ("advantages", "advantages.png")):
        html = (site / "families" / f"{page}.html").read_text(encoding="utf-8")
        assert img in html and (site / "families" / img).is_file(), page
    html = (site / "families" / "advantages.html").read_text(encoding="utf-8")
    for spec in site_mod.outcome_advantage_specs():
        assert f"../algorithms/{spec.name}.html" in html, spec.name
    agg = (site / "families" / "aggregation.html").read_text(encoding="utf-8")
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm",
                 "group-token-mean"):
        assert mode in agg


def test_aggregation_micro_batching_numbers():
    """The page's claim, recomputed: micro-batching with the global normalizer reproduces the full batch (except a
    prompt split across micro-batches); token-mean without it becomes seq-mean-token-mean."""
    import numpy as np

    from rlspec.conformance import site_families

    rows = {r["label"]: r for r in site_families.aggregation_data()}
    for label, r in rows.items():
        if label != "group-token-mean (both from one prompt)":
            assert np.allclose(r["global"], r["full"]), label
    assert np.allclose(rows["token-mean"]["local"], rows["seq-mean-token-mean"]["full"])
    assert not np.allclose(rows["token-mean"]["local"], rows["token-mean"]["full"])


def test_provenance_badges_and_property_links(site):
    """Every equation row carries a provenance badge; every property test id links to its source page section."""
    from rlspec.reference import registry

    for spec in registry.specs():
        if spec.status == "planned":
            continue
        html = (site / "algorithms" / f"{spec.name}.html").read_text(encoding="utf-8")
        for src in {e.source for e in spec.equations}:
            assert f'class="rl-prov rl-prov-{src}"' in html, (spec.name, src)
        for prop in spec.properties:
            path = prop.split("::")[0]
            if "::" in prop and path.startswith("properties/"):
                assert f"../source/{path.removesuffix('.py')}.html#" in html, (spec.name, prop)
                assert (site / "source" / f"{path.removesuffix('.py')}.html").is_file()
    css = (site / "assets" / "extra.css").read_text(encoding="utf-8")
    assert ".rl-prov-reconstructed" in css


def _section(html: str, heading_id: str) -> str:
    """The HTML of one h2 section (from its heading to the next h2)."""
    k = html.find(f'id="{heading_id}"')
    assert k >= 0, heading_id
    nxt = html.find("<h2", k)
    return html[k:nxt if nxt >= 0 else len(html)]


def test_every_page_shows_conformance_counts_per_framework(site):
    """Claim: each built entry's page shows, per framework, its cases per verdict in each dtype as the committed
    compatibility data (docs/compatibility/summary.json, checked against the reports by test_docs_examples) says."""
    import html as html_mod

    from rlspec.conformance import site_data
    from rlspec.reference import registry

    data = site_data.load_summary(DOCS / "compatibility" / "summary.json")
    assert data is not None
    for spec in registry.specs():
        if spec.status == "planned":
            continue
        sec = html_mod.unescape(_section((site / "algorithms" / f"{spec.name}.html").read_text(encoding="utf-8"),
                                         "conformance"))
        per = data["entries"].get(spec.name)
        if per is None:
            assert "Not in the committed compatibility run" in sec, spec.name
            continue
        for impl, e in per.items():
            assert f"../compatibility/{impl}.html" in sec, (spec.name, impl)
            for cell in e["cells"].values():
                for st, n in cell["counts"].items():
                    assert f"{st} {n}" in sec, (spec.name, impl, st, n)


def test_every_page_has_its_e2e_curve_or_says_why_not(site):
    """Claim: an entry with a committed e2e run shows its learning-curve figure (the image exists); every other
    entry's page states that it has no run and why."""
    from rlspec.conformance import site as site_mod
    from rlspec.conformance import site_data
    from rlspec.reference import registry

    curves = site_data.load_curves(DOCS / "e2e" / "curves.json")
    for spec in registry.specs():
        if spec.status == "planned":
            continue
        sec = _section((site / "algorithms" / f"{spec.name}.html").read_text(encoding="utf-8"),
                       "end-to-end-learning-curve")
        found = site_mod.e2e_data(curves, spec.name)
        ran = found is not None and found[0] in ("matrix", "pipeline") and found[1].get("runs")
        if ran:
            assert f"fig/{spec.name}-e2e.png" in sec and (site / "algorithms" / "fig" / f"{spec.name}-e2e.png").is_file()
        else:
            assert re.search(r"No run|Not run|raised", sec), spec.name


def test_tabular_entries_have_a_figure(site):
    """Claim: every built tabular entry's page embeds a figure: its own (registry extras) or one drawn from the
    reference on its problem (site_tabular), and the image file exists."""
    from rlspec.reference import registry

    for spec in registry.specs():
        if spec.kind != "tabular" or spec.status == "planned":
            continue
        page = site / "algorithms" / f"{spec.name}.html"
        parser = _Page()
        parser.feed(page.read_text(encoding="utf-8"))
        figs = [src for src in parser.images if "-ratio" not in src and "-e2e" not in src and "-example" not in src]
        assert figs, spec.name
        assert all((page.parent / src).is_file() for src in figs), spec.name


def test_api_pages_render_the_docstrings(site):
    """Claim: the API pages hold mkdocstrings output: the documented functions with their docstrings' text."""
    reg = (site / "api" / "registry.html").read_text(encoding="utf-8")
    assert 'class="doc doc-object doc-function"' in reg
    for name in ("get", "specs", "register", "Spec"):
        assert f'id="rlspec.reference.registry.{name}"' in reg, name
    assert "replaces a planned one" in reg  # register's docstring
    for page, ident in (("aggregation", "rlspec.reference.aggregation.coefficients"),
                        ("harness", "rlspec.conformance.harness.compare"),
                        ("adapters", "rlspec.conformance.adapters.base.Adapter"),
                        ("optimized", "rlspec.optimized.common.ratio"), ("common", "rlspec.reference.common.ratio")):
        assert f'id="{ident}"' in (site / "api" / f"{page}.html").read_text(encoding="utf-8"), ident
