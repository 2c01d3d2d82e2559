"""The layout of the package, read from its imports (docs/development.md, "Layout"): curvature/ is a floor below the noise modes,
the registries import none of their users, and no module imports itself through others.

Every import statement counts, those inside functions too (a registry's `load_all()` importing its users was one);
imports under `if TYPE_CHECKING:` name types and run nothing, so they do not.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "noisereg"


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The modules a file imports, as absolute names (`from a import b` gives `a` and `a.b`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package up
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parents + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def within(names: set[str], prefix: str) -> set[str]:
    return {name for name in names if name == prefix or name.startswith(prefix + ".")}


def test_curvature_imports_no_noise_mode():
    for name, path in MODULES.items():
        if name.startswith("noisereg.curvature"):
            assert not within(imported(path), "noisereg.noise"), f"{path.relative_to(SOURCE)} imports noisereg.noise"


def test_the_registries_import_none_of_their_users():
    users = ("noisereg.data", "noisereg.models", "noisereg.noise", "noisereg.probes", "noisereg.train")
    found = {user for user in users if within(imported(MODULES["noisereg.registry"]), user)}
    assert not found, f"registry.py imports {sorted(found)}: the packages register themselves when imported"
    for registry in (
        "noisereg.figures.registry",
        "noisereg.figures.canvas",
        "noisereg.figures.grouping",
        "noisereg.figures.claims",
    ):
        assert not within(imported(MODULES[registry]), "noisereg.papers"), f"{registry} imports a paper"


def test_no_module_imports_itself_through_others():
    """The imports between noisereg's modules form no circle (a package's __init__ importing its own modules is
    not one: importing a module runs its package's __init__ first, which Python handles)."""
    edges = {
        name: {module for module in imported(path) if module in MODULES and module != name}
        for name, path in MODULES.items()
    }
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            circle = path[path.index(name) :] + [name]
            raise AssertionError("import circle: " + " -> ".join(circle))
        if name in done:
            return
        for module in sorted(edges[name]):
            visit(module, path + [name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])


def test_no_package_imports_itself_through_others():
    """Between noisereg's subpackages (train, tracking, figures, papers, ...) the imports form no circle either: a
    package below another never reaches back up (tracking read checkpoints through train while train raised
    tracking's DamagedRecord, which now lives in errors.py beside SettingError)."""

    def package(name: str) -> str | None:
        parts = name.split(".")
        return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None

    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        source = package(name)
        targets = {package(module) for module in imported(path) if module.startswith("noisereg.")}
        if source:
            edges.setdefault(source, set()).update(t for t in targets if t and t != source)
    for source, targets in edges.items():
        for target in targets:
            assert source not in edges.get(target, set()), f"import circle between packages: {source} <-> {target}"


def test_the_code_is_linted_and_formatted():
    """`make lint`: ruff's lint rules and its formatter (pyproject.toml, [tool.ruff]) pass on the code, as CI runs
    them; `make format` fixes what they find."""
    root = SOURCE.parent
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check", "--no-fix"], ["format", "--check"]):
        result = subprocess.run(
            [str(ruff), *command, "src", "scripts", "tests", "examples", "docs", "run.py"],
            cwd=root,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"ruff {' '.join(command)}: {result.stdout[-2000:]}{result.stderr[-500:]}"


def test_no_figures_or_papers_file_is_over_400_lines():
    """A reader finds a paper's method in one short file: the shared figure machinery and each paper's science,
    figures, claims and gates stay under 400 lines a file (split by concern, not by length, when one grows)."""
    long = {
        str(path.relative_to(SOURCE)): n
        for folder in ("figures", "papers")
        for path in (PACKAGE / folder).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long, f"over 400 lines: {long}"
