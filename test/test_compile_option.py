"""``model.compile``: DepthCompleter runs the network through torch.compile when asked, and a compilation that
fails (no C++ compiler, unsupported op) becomes one warning and eager frames with the same output."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from depth_completion_ros.model.inference import DepthCompleter


def frame() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    sparse = np.where(rng.random((32, 48)) < 0.1, 5 + 20 * rng.random((32, 48)), 0).astype(np.float32)
    return rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), sparse


def test_compile_is_used_and_a_failing_compile_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    eager = DepthCompleter(weights=None, device='cpu')
    expected = eager.complete(*frame()).depth
    compiled_calls = []

    def fake_compile(module: torch.nn.Module, **_kwargs: object):
        def broken(*_inputs: torch.Tensor) -> None:
            compiled_calls.append(module)
            raise RuntimeError('InductorError: no working C++ compiler found\nsecond line')
        return broken

    monkeypatch.setattr(torch, 'compile', fake_compile)
    completer = DepthCompleter(weights=None, device='cpu', compile_model=True)
    completer.model.load_state_dict(eager.model.state_dict())
    expected_warning = r'torch.compile failed \(RuntimeError: InductorError: no working C\+\+ compiler found\); running'
    with pytest.warns(RuntimeWarning, match=expected_warning):
        first = completer.complete(*frame()).depth
    assert compiled_calls == [completer.network()]        # the fused network was handed to torch.compile
    assert not completer.compile_model                    # eager from now on: no second attempt, no warning
    second = completer.complete(*frame()).depth
    assert len(compiled_calls) == 1
    np.testing.assert_allclose(first, expected, atol=1e-5)
    np.testing.assert_array_equal(first, second)
