"""Imports point down only: the tree's layers (docs/ARCHITECTURE.md) checked on the source, so a shortcut
from the core to the model, ROS or tools fails here instead of in a reviewer's head."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'depth_completion_ros'

# layer -> the package's own layers it may import (itself always allowed)
ALLOWED = {
    'core': set(),
    'model': {'core'},
    'data': {'core'},
    'pipeline': {'core', 'model'},
    'training': {'core', 'model', 'data', 'pipeline'},
    'ros': {'core', 'model', 'data', 'pipeline'},
    'tools': {'core', 'model', 'data', 'pipeline', 'training', 'ros'},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix('.py')


def _imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split('.')
            if parts[0] == 'depth_completion_ros' and len(parts) > 1:
                layers.add(parts[1])
    return layers


def test_imports_point_down_only():
    violations = []
    for path in sorted(PACKAGE.rglob('*.py')):
        layer = _layer(path)
        if layer not in ALLOWED:
            continue  # cli.py, __init__.py, weights/: entry points and data
        for imported in _imported_layers(path) - ALLOWED[layer] - {layer}:
            if imported in ALLOWED:
                violations.append(f'{path.relative_to(PACKAGE)} ({layer}) imports {imported}')
    assert not violations, '\n'.join(violations)


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('from depth_completion_ros.model.inference import DepthCompleter\n')
    assert _imported_layers(bad) == {'model'}
