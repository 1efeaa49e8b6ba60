"""The package layout holds: imports point down the layers, no module takes another package's private names, and
detector/ never imports training/ or bench/. Parsed with ast, nothing is imported, so it runs in well under a second."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: detector's packages by layer: a module may import its own package, any lower layer, and the shared modules at the
#: top of detector/ (config, errors, logs); never a package of its own layer or above (docs/architecture.md).
LAYERS = {
    "ingest": 1, "face": 1, "models": 1, "origin": 1,
    "temporal": 2,
    "scan": 3,
    "engines": 4, "evaluate": 4, "serve": 4,
    "cli": 5, "demo": 5, "__main__": 6,
}
SHARED = {"config", "errors", "logs", "__init__"}


def _modules(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "static" not in p.parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every absolute import in ``path``; relative imports come back as ``.`` paths."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            found.append(("." * node.level + (node.module or ""), [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def _package(module: str) -> str:
    """detector.scan.pipeline -> scan; detector.config -> config; training.data.codec -> data."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("path", _modules("detector"), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_detector_imports_point_down(path: Path) -> None:
    here = _package(".".join(path.relative_to(ROOT).with_suffix("").parts))
    for module, names in _imports(path):
        assert not module.startswith("."), f"{path.name}: relative import {module} (the packages import absolutely)"
        assert module.split(".")[0] not in ("training", "bench"), f"{path.name} imports {module}"
        if module == "detector":
            targets = [name for name in names if name not in SHARED and name != "__version__"]
            assert not targets, f"{path.name}: 'from detector import {', '.join(targets)}'"
            continue
        if not module.startswith("detector."):
            continue
        there = _package(module)
        if there in SHARED or there == here:
            continue
        assert there in LAYERS and LAYERS[there] < LAYERS.get(here, 0), \
            f"{path.name} ({here}) imports {module} ({there})"


@pytest.mark.parametrize("path", _modules("detector") + _modules("training") + _modules("bench"),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_takes_another_packages_private_names(path: Path) -> None:
    own = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for module, names in _imports(path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private or module.rpartition(".")[0] == own, f"{path.name}: {module} {private}"


@pytest.mark.parametrize("path", _modules("training/data") + _modules("training/heads"),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_training_library_imports_no_step_or_experiment(path: Path) -> None:
    for module, _ in _imports(path):
        if module.startswith("training."):
            assert module.split(".")[1] in ("data", "heads"), f"{path.name} imports {module}"
