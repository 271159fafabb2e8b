"""The documentation site in a real browser (``tox -e docs-browser``): every page loads without console errors, math
is rendered by KaTeX, every image loads, internal links resolve, and search finds algorithms by their paper titles.

Builds the site (``rlspec site``), serves it with ``python -m http.server`` on localhost and runs
``check_site.cjs`` (playwright-core driving Debian's Chromium by its path; no browser download). Skipped unless
node, Chromium (``apt-get install chromium``; ``RLSPEC_CHROMIUM`` names another binary), playwright-core
(``npm install --prefix tests/site_browser``, or ``NODE_PATH``) and mkdocs-material are all present.
``RLSPEC_SITE_DIR`` points the test at an already built site instead of building one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

HERE = Path(__file__).resolve().parent
#: algorithms whose paper title the search must find (when they are in the registry)
SEARCH_FOR = ("grpo", "dapo", "gspo", "cispo", "rloo", "dr_grpo")


def _chromium() -> str | None:
    for cand in (os.environ.get("RLSPEC_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(HERE / "node_modules")] + [p for p in env.get("NODE_PATH", "").split(os.pathsep) if p]
    env["NODE_PATH"] = os.pathsep.join(paths)
    return env


def _requirements() -> tuple[str, str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium, or set RLSPEC_CHROMIUM)")
    res = subprocess.run([node, "-e", "require.resolve('playwright-core')"], env=_node_env(), capture_output=True)
    if res.returncode != 0:
        pytest.skip("playwright-core is not installed (npm install --prefix tests/site_browser)")
    return node, chromium


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    if os.environ.get("RLSPEC_SITE_DIR"):
        return Path(os.environ["RLSPEC_SITE_DIR"])
    for mod in ("mkdocs", "material", "pymdownx", "mkdocstrings"):
        pytest.importorskip(mod)
    from rlspec.conformance import site as site_mod

    tmp = tmp_path_factory.mktemp("site")
    return site_mod.build_site(tmp / "site", src_dir=tmp / "src", strict=True, log=lambda _m: None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(site_dir):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(site_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_site_in_a_browser(site_dir, served):
    node, chromium = _requirements()
    from rlspec.reference import registry

    pages = sorted(str(p.relative_to(site_dir)) for p in site_dir.rglob("*.html") if "assets" not in p.parts)
    searches = [{"query": registry.get(n).paper.title, "expect": f"algorithms/{n}.html"}
                for n in SEARCH_FOR if n in registry.names()]
    job = {"base": served, "chromium": chromium, "pages": pages, "searches": searches}
    res = subprocess.run([node, str(HERE / "check_site.cjs")], input=json.dumps(job), text=True, capture_output=True,
                         env=_node_env(), timeout=1800)
    assert res.returncode in (0, 1), f"check_site.cjs crashed ({res.returncode}):\n{res.stderr[-4000:]}"
    report = json.loads(res.stdout)
    print(f"browser check: {report['pages']} pages, {report['math']} math elements, {report['images']} images, "
          f"{report['links']} internal links, searches {report['searches']}, {report['seconds']:.0f} s")
    assert not report["failures"], "\n".join(report["failures"][:50])
    assert report["pages"] == len(pages) and report["math"] > 0 and report["images"] > 0
    assert len(report["searches"]) == len(searches)
