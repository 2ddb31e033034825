"""ruff is part of the suite: the tree must lint clean."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
def test_ruff_clean():
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', str(REPO_ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
