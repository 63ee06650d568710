"""The package layout the architecture issue asked for, checked on every run: the import-linter
contracts (layers, no gradio/fastapi in the core, no torch/diffusers in the UI and web, no cycles),
a small root, and modules short enough to read (docs/architecture.md)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from studio.settings import PACKAGE_DIR, PROJECT_DIR

MAX_LINES = 400
ROOT_MODULES = {"__init__.py", "__main__.py", "api.py", "errors.py", "images.py", "request.py", "settings.py"}


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
    assert "4 kept, 0 broken" in result.stdout


def test_no_module_imports_itself_back_through_others():
    """No cycle of module imports at all, including imports made only for type checking."""
    graph = grimp.build_graph("studio", exclude_type_checking_imports=False)
    cycles = [(a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
              if b != a and graph.find_shortest_chain(importer=b, imported=a)]
    assert not cycles, cycles[:5]


def test_the_root_holds_only_the_shared_vocabulary():
    assert {path.name for path in PACKAGE_DIR.glob("*.py")} == ROOT_MODULES


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {str(path.relative_to(PROJECT_DIR)): n for path in PACKAGE_DIR.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long
