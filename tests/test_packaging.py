"""pyproject.toml and the requirement files say the same (docs/install.md): `pip install -r requirements.txt` and
`pip install -e .` install one list, requirements-dev.txt is `.[all]`, and the wheel holds every project package."""
from __future__ import annotations

import re
from typing import Dict, List, Set

import pytest

from conftest import ROOT

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml with tomllib")
INSTALLED_TOP_LEVEL = {"models", "data", "options", "util", "training"}
NOT_INSTALLED = {"tests", "bench"}  # run from the checkout


def pyproject() -> Dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_lines(name: str) -> List[str]:
    """The requirement specifiers of a requirements file (comments and option lines such as -r left out)."""
    lines = [re.sub(r"\s+#.*$", "", l).strip() for l in (ROOT / name).read_text().splitlines()]
    return [l for l in lines if l and not l.startswith(("#", "-"))]


def norm(spec: str) -> str:
    """A specifier without spaces, the name lower-case with '-' for '_'."""
    spec = spec.replace(" ", "")
    name = re.match(r"[A-Za-z0-9._-]+", spec).group(0)
    return name.lower().replace("_", "-") + spec[len(name):]


def test_runtime_requirements_are_the_project_dependencies() -> None:
    deps = pyproject()["project"]["dependencies"]
    assert sorted(map(norm, deps)) == sorted(map(norm, requirement_lines("requirements.txt")))
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()


@pytest.mark.parametrize("source", ["requirements.txt", "pyproject.toml"])
def test_visdom_is_a_dependency_from_python_3_12_on(source: str) -> None:
    """visdom (the default --display_id windows) installs with the runtime where it is a plain wheel (Python
    3.12+); on 3.10/3.11 its source package needs a build constraint, so there it stays the extra of
    docs/install.md (``.[visdom]``, with scripts/constraints.txt)."""
    requirements = pytest.importorskip("packaging.requirements", reason="pip's requirement parser")
    lines = requirement_lines(source) if source == "requirements.txt" else pyproject()["project"]["dependencies"]
    visdom = [r for r in map(requirements.Requirement, lines) if r.name == "visdom"]
    assert len(visdom) == 1 and visdom[0].marker is not None
    marker = visdom[0].marker
    for version, wanted in (("3.10", False), ("3.11", False), ("3.12", True), ("3.13", True)):
        assert marker.evaluate({"python_version": version}) is wanted, version
    assert pyproject()["project"]["optional-dependencies"]["visdom"] == ["visdom>=0.2.4"]  # the extra stays
    install = (ROOT / "docs" / "install.md").read_text()
    assert 'visdom; python_version >= "3.12"' in install and "scripts/constraints.txt" in install
    assert "setuptools<81" in (ROOT / "scripts" / "constraints.txt").read_text()


def test_dev_requirements_are_all_extras() -> None:
    project = pyproject()["project"]
    extras: Dict[str, List[str]] = project["optional-dependencies"]
    assert {"visdom", "loggers", "export", "test", "all"} <= set(extras)
    assert extras["all"] == [f"{project['name']}[{','.join(k for k in extras if k != 'all')}]"]
    union: Set[str] = {norm(s) for k, specs in extras.items() if k != "all" for s in specs}
    assert union == set(map(norm, requirement_lines("requirements-dev.txt")))


def test_torch_floor_is_where_the_code_needs_it() -> None:
    """torch >= 2.4 (fused Adam on the CPU); the export extra raises it to what the ONNX exporters need."""
    project = pyproject()["project"]
    assert "torch>=2.4" in map(norm, project["dependencies"])
    assert "torch>=2.6" in map(norm, project["optional-dependencies"]["export"])
    assert project["requires-python"] == ">=3.10"


def test_wheel_holds_every_project_package() -> None:
    """setuptools finds every package of models/, data/, options/, util/ (and training/ where it exists), and
    nothing else: the scripts, tests and benchmarks stay in the checkout (a top-level test.py would shadow
    Python's own ``test`` package)."""
    setuptools = pytest.importorskip("setuptools", reason="the build backend")
    find = pyproject()["tool"]["setuptools"]["packages"]["find"]
    assert find.get("namespaces") is False
    found = set(setuptools.find_packages(where=str(ROOT), include=find["include"]))
    expected = {".".join(p.parent.relative_to(ROOT).parts) for top in INSTALLED_TOP_LEVEL
                for p in (ROOT / top).glob("**/__init__.py")}
    assert found == expected and {"models", "data", "options", "util", "util.metrics"} <= found
    top_level = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert top_level <= INSTALLED_TOP_LEVEL | NOT_INSTALLED, "a new top-level package: install it or list it here"
