"""LRRU in PyTorch: variants, network, loss, weights I/O and the numpy-in/numpy-out completer.

Heavy pieces (weights, inference) are imported lazily so ``import depth_completion_ros.model`` stays cheap.
"""
from __future__ import annotations

from typing import Any

from .config import REFERENCE_PARAMS, VARIANTS, LRRUConfig, get_config
from .lrru import LRRU, build_model, count_parameters, describe_variants

_LAZY = {
    'lrru_loss': '.loss',
    'WeightsError': '.weights', 'save_weights': '.weights', 'load_model': '.weights',
    'list_shipped_weights': '.weights', 'list_imported_weights': '.weights',
    'import_authors_checkpoint': '.weights', 'user_weights_dir': '.weights',
    'DepthCompleter': '.inference', 'Completion': '.inference',
}

__all__ = ['LRRU', 'LRRUConfig', 'REFERENCE_PARAMS', 'VARIANTS', 'build_model', 'count_parameters',
           'describe_variants', 'get_config', *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
