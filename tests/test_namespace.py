"""One import namespace: rlspec installs as the single top-level package ``rlspec``.

The repository keeps ``reference/ optimized/ conformance/`` at the top; installed, they are
``rlspec.reference``, ``rlspec.optimized`` and ``rlspec.conformance``. These tests prove it on a real,
non-editable install: a wheel built from this checkout, installed into a fresh virtual environment, used
from a working directory outside the checkout.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("reference", "optimized", "conformance")
SOURCE_FOLDERS = ("rlspec", "reference", "optimized", "conformance", "properties", "tests")


def _bare_imports(path: Path) -> list[str]:
    """Import statements in ``path`` that name a layer without the ``rlspec.`` prefix."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in LAYERS]
    return found


def test_no_module_imports_a_bare_layer_name():
    """Every import in the project uses the rlspec.* names (a bare ``reference`` would load a second copy of
    the registry, or a user's unrelated package of that name)."""
    bad = [hit for folder in SOURCE_FOLDERS for p in sorted((ROOT / folder).rglob("*.py")) for hit in _bare_imports(p)]
    assert bad == []


def test_import_rlspec_gives_version_and_entry_points():
    """``import rlspec`` gives the version, the registry, rlspec.get (reference) and rlspec.optimized.get."""
    import rlspec
    from rlspec import registry

    assert isinstance(rlspec.__version__, str) and rlspec.__version__
    assert registry is rlspec.registry
    assert "ppo" in registry.names()
    assert rlspec.get("ppo") is registry.get("ppo")
    assert callable(rlspec.optimized.get("ppo"))
    with pytest.raises(AttributeError):
        rlspec.no_such_thing  # noqa: B018


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src")  # build from a copy: setuptools writes build/ and *.egg-info beside setup.py
    for name in ("rlspec", *LAYERS):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, text=True)
    (whl,) = out.glob("rlspec-*.whl")
    return whl


def test_wheel_holds_only_the_rlspec_package(wheel: Path):
    """The wheel's only top-level package is rlspec (plus its .dist-info); vectors and expectations ship in it."""
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"rlspec"}
    assert "rlspec/reference/registry.py" in names and "rlspec/optimized/ppo.py" in names
    assert any(n.startswith("rlspec/conformance/vectors/ppo/") and n.endswith(".json") for n in names)
    assert "rlspec/conformance/vectors/schema.json" in names
    assert any(n.startswith("rlspec/conformance/expectations/") and n.endswith(".txt") for n in names)


def test_installed_wheel_works_outside_the_checkout(wheel: Path, tmp_path: Path):
    """In a fresh venv with the wheel installed (not editable) and the working directory elsewhere: the bare
    names do not import, and ``rlspec check optimized`` plus a golden-vector check pass from the wheel."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # numpy, torch, ... come from this environment's site-packages, added as a plain path: its .pth files
    # (among them the editable install of this checkout) are not processed there.
    (site / "_rlspec_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RLSPEC_IMPL")}
    env["MPLBACKEND"] = "Agg"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)

    for bare in LAYERS:
        r = run(str(py), "-c", f"import {bare}")
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, (bare, r.stdout, r.stderr)
    r = run(str(py), "-c", "import rlspec, rlspec.reference.registry as m; print(rlspec.__version__); print(m.__file__)")
    assert r.returncode == 0, r.stderr
    assert str(site) in r.stdout.splitlines()[1]  # the installed copy, not this checkout
    rlspec_bin = str(env_dir / "bin" / "rlspec")
    r = run(rlspec_bin, "check", "optimized", "--algorithms", "ppo,grpo,value_clip", "--n-random", "3",
            "--no-progress", "--out", str(tmp_path / "report"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "report" / "report.json").exists()
    code = ("from rlspec.conformance import vectors; import sys; "
            "fs = [f for f in vectors.files() if f.parent.name == 'ppo']; "
            "p = [x for f in fs for x in vectors.check_file(f)]; print(len(fs), p); sys.exit(1 if p or not fs else 0)")
    r = run(str(py), "-c", code)
    assert r.returncode == 0, r.stdout + r.stderr
