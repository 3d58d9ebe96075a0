"""The package layout (README, "Layout"): packages by the paper's stages, none importing a
package below it in the list, and ``register`` (what registration needs) free of training,
data and plotting code (test_inference_imports.py runs it with those blocked)."""

import ast
import subprocess
import sys
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "HeadRegistrationLib"
# Each package may import only packages with a smaller level (and itself).
LEVELS = {"core": 0, "register": 1, "groundtruth": 2, "data": 3, "learn": 4, "evaluate": 5, "cli": 6}


def imported_packages(path: Path) -> set[str]:
    """The HeadRegistrationLib packages a module imports, at its top or inside functions."""
    package = path.relative_to(LIBRARY).parts[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.add(package)
            elif node.level == 2:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif node.module and node.module.startswith("HeadRegistrationLib."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("HeadRegistrationLib.")}
    return found & set(LEVELS)


def test_every_module_lies_in_a_stage_package():
    assert sorted(p.name for p in LIBRARY.glob("*.py")) == ["__init__.py"]
    assert {p.name for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LEVELS)


def test_no_package_imports_one_below_it():
    upward = []
    for path in sorted(LIBRARY.glob("*/*.py")):
        package = path.relative_to(LIBRARY).parts[0]
        for other in imported_packages(path):
            if other != package and LEVELS[other] >= LEVELS[package]:
                upward.append(f"{path.relative_to(LIBRARY)} imports {other}")
    assert not upward, upward


def test_the_register_package_imports_no_training_data_or_plotting():
    script = ("import pkgutil, importlib, sys, HeadRegistrationLib.register as r\n"
              "for m in pkgutil.iter_modules(r.__path__): importlib.import_module(f'{r.__name__}.{m.name}')\n"
              "print(' '.join(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = run.stdout.split()
    assert "HeadRegistrationLib.register.autoregister" in loaded
    for name in loaded:
        assert not name.startswith(("HeadRegistrationLib.learn", "HeadRegistrationLib.data", "HeadRegistrationLib.cli",
                                    "HeadRegistrationLib.evaluate", "HeadRegistrationLib.groundtruth")), name
        assert name.split(".")[0] not in ("matplotlib", "sklearn"), name   # (torch itself imports tqdm when there)
