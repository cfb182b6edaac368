"""The packages import downwards only: util <- data, models <- options <- training <- entry scripts.

Every import of every module counts, also those inside functions. ``python tests/test_layering.py [ROOT]``
prints the import graph between the layers (and the violations) of the checkout at ROOT (default: this one).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("util", "data", "models", "options", "training")
ENTRY_SCRIPTS = ("train", "test", "evaluate", "export", "compare")
# what each layer may import besides itself
ALLOWED: Dict[str, Tuple[str, ...]] = {
    "util": (),
    "data": ("util",),
    "models": ("util",),
    "options": ("models", "data", "util"),
    "training": ("options", "models", "data", "util"),
    "entry": PACKAGES,
}


@dataclass(frozen=True)
class Import:
    """One import statement: where it is, what it names, and whether it sits inside a function."""

    file: str
    line: int
    source: str  # the importing layer
    target: str  # the imported layer ("entry" for an entry script)
    module: str
    in_function: bool


def layer_of_file(path: Path, root: Path) -> Optional[str]:
    """The layer of a source file: its top-level package, "entry" for an entry script, None otherwise."""
    parts = path.relative_to(root).parts
    if len(parts) > 1 and parts[0] in PACKAGES:
        return parts[0]
    if len(parts) == 1 and path.stem in ENTRY_SCRIPTS:
        return "entry"
    return None


def layer_of_module(module: str) -> Optional[str]:
    """The layer a dotted module name belongs to (None for the standard library and other packages)."""
    top = module.split(".")[0]
    if top in PACKAGES:
        return top
    return "entry" if top in ENTRY_SCRIPTS else None


def imported_modules(node: ast.AST, package: str) -> List[str]:
    """The absolute module names an import statement refers to (relative imports resolved inside ``package``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level:  # from . import x / from .y import z: inside the importing file's own package
        return [package + ("." + node.module if node.module else "")]
    return [node.module or ""]


def walk_imports(tree: ast.AST) -> Iterator[Tuple[ast.AST, bool]]:
    """Every import node of a module, with whether it is inside a function."""
    def visit(node: ast.AST, in_function: bool) -> Iterator[Tuple[ast.AST, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from visit(child, inner)
    yield from visit(tree, False)


def collect(root: Path) -> List[Import]:
    """Every project import of every layered source file under ``root``."""
    files = [p for pkg in PACKAGES if (root / pkg).is_dir() for p in sorted((root / pkg).rglob("*.py"))]
    files += [root / f"{name}.py" for name in ENTRY_SCRIPTS if (root / f"{name}.py").is_file()]
    found: List[Import] = []
    for path in files:
        source = layer_of_file(path, root)
        if source is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = ".".join(path.relative_to(root).parts[:-1])
        for node, in_function in walk_imports(tree):
            for module in imported_modules(node, package):
                target = layer_of_module(module)
                if target is not None:
                    found.append(Import(str(path.relative_to(root)), node.lineno, source, target, module,
                                        in_function))
    return found


def violations(imports: List[Import]) -> List[Import]:
    """The imports of a higher layer by a lower one (and of the entry scripts by anything)."""
    return [i for i in imports if i.target != i.source and i.target not in ALLOWED[i.source]]


def graph(imports: List[Import]) -> str:
    """The layer-to-layer import counts (inside functions in brackets), then every violation."""
    edges = Counter((i.source, i.target) for i in imports if i.source != i.target)
    inner = Counter((i.source, i.target) for i in imports if i.source != i.target and i.in_function)
    lines = ["layer -> layer: imports (inside functions)"]
    for (source, target), n in sorted(edges.items()):
        bad = "" if target in ALLOWED[source] else "   <-- upwards"
        lines.append(f"  {source:8s} -> {target:8s} {n:3d} ({inner[(source, target)]}){bad}")
    in_functions = sum(1 for i in imports if i.in_function)
    lines.append(f"project imports inside functions: {in_functions}")
    for i in violations(imports):
        lines.append(f"  violation: {i.file}:{i.line} ({i.source}) imports {i.module} ({i.target})"
                     f"{' inside a function' if i.in_function else ''}")
    return "\n".join(lines)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_downwards(layer: str) -> None:
    bad = [i for i in violations(collect(REPO)) if i.source == layer]
    assert not bad, "\n".join(f"{i.file}:{i.line} imports {i.module} ({i.target} is not below {layer})" for i in bad)


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """A lower layer importing a higher one, also lazily or relatively, is reported."""
    (tmp_path / "util").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "util" / "x.py").write_text("def f():\n    from models import networks\n")
    (tmp_path / "models" / "y.py").write_text("from . import z\nimport data.lab\nimport train\n")
    found = {(i.file, i.module, i.in_function) for i in violations(collect(tmp_path))}
    assert found == {("util/x.py", "models", True), ("models/y.py", "data.lab", False),
                     ("models/y.py", "train", False)}


# ``import models`` (done by every script, and by anyone who loads a checkpoint) loads the models and the few util
# modules they use; the metric implementations (Inception, the domain classifier) and the plotting and progress
# libraries are for the scripts that need them. torch itself imports tqdm (torch.hub), so the libraries count
# only when ``import models`` is what brings them in.
LIGHT_IMPORT_BOUND = 24  # project modules loaded by ``import models`` (20 at the time of writing)
HEAVY_LIBRARIES = ("tqdm", "torchvision", "matplotlib")
ALLOWED_METRICS_MODULES = {"util.metrics", "util.metrics.images"}  # from_model_range (models/base_model.py)
PROBE = """
import json, sys
import torch
before = set(sys.modules)
import models
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_import_models_stays_light() -> None:
    """A fresh ``import models`` loads no metric implementation, no tqdm/torchvision/matplotlib, few modules."""
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    loaded = json.loads(res.stdout.strip().splitlines()[-1])
    project = [m for m in loaded if m.split(".")[0] in PACKAGES]
    metrics = sorted(m for m in project if m.startswith("util.metrics") and m not in ALLOWED_METRICS_MODULES)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY_LIBRARIES)
    assert not metrics, f"import models loads {metrics}"
    assert not heavy, f"import models loads {heavy}"
    assert "util.progress" not in project
    assert len(project) <= LIGHT_IMPORT_BOUND, f"import models loads {len(project)} project modules: {project}"


if __name__ == "__main__":
    print(graph(collect(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO)))
