"""The shape of the code that the README's map promises: commands at ``app/``'s top level, machinery
in folders that never import a command, short files, and no hand-made import paths."""

from __future__ import annotations

import ast
import subprocess

import pytest

from tests.support.paths import REPO_ROOT

COMMANDS = sorted(path.stem for path in (REPO_ROOT / "app").glob("*.py") if path.stem != "__init__")
LIBRARY = sorted(
    path for folder in ("app", "models", "data_pipelines") for path in (REPO_ROOT / folder).rglob("*.py")
    if not (path.parent == REPO_ROOT / "app" and path.stem != "__init__")
)


def imported_modules(path) -> set[str]:
    """Every module a file imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("command", COMMANDS)
def test_every_top_level_module_of_app_is_a_command(command):
    source = (REPO_ROOT / "app" / f"{command}.py").read_text()
    assert "def main(" in source and 'if __name__ == "__main__":' in source


def test_no_library_module_imports_a_command():
    commands = {f"app.{name}" for name in COMMANDS}
    offenders = {str(path.relative_to(REPO_ROOT)): sorted(imported_modules(path) & commands) for path in LIBRARY}
    assert not {path: modules for path, modules in offenders.items() if modules}


def test_files_stay_short():
    long = {str(path.relative_to(REPO_ROOT)): n for path in LIBRARY + [REPO_ROOT / "app" / f"{c}.py" for c in COMMANDS]
            if (n := len(path.read_text().splitlines())) > 350}
    assert not long


def test_nothing_edits_the_import_path():
    needle = "sys" + ".path"
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [name for name in files if (REPO_ROOT / name).is_file() and needle in (REPO_ROOT / name).read_text(errors="ignore")]
