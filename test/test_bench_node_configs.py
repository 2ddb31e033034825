"""bench node runs the weights it says it runs: a variant gets the node's own choice (the LiDAR weights for the
LiDAR bench bag), not whichever shipped file of that variant came last (the RGB-D weights with their scipy
linear prefill once turned the Mini row's prefill stage into 750 ms)."""
from depth_completion_ros.model import list_shipped_weights
from depth_completion_ros.model.weights import read_metadata, resolve_weights
from depth_completion_ros.pipeline import resolve_shipped_weights
from depth_completion_ros.tools.bench.node import node_configs


def test_variant_runs_the_lidar_weights_the_node_would_pick() -> None:
    shipped = list_shipped_weights()
    assert {'lrru_mini', 'lrru_mini_rgbd'} <= {w['name'] for w in shipped}
    configs = dict(node_configs('prefill,mini,lrru_mini_rgbd,base', shipped, 'cpu'))
    assert configs['prefill'] == {'model.device': 'cpu', 'publish_debug': False, 'prefill_only': True}
    mini = configs['mini']
    assert mini['model.weights'] == resolve_shipped_weights('mini') == 'lrru_mini'
    assert read_metadata(resolve_weights(mini['model.weights']))['prefill'] == 'ipbasic'
    assert configs['lrru_mini_rgbd'] == {'model.device': 'cpu', 'publish_debug': False, 'model.variant': 'mini',
                                         'model.weights': 'lrru_mini_rgbd'}
    assert configs['base (untrained, timing only)']['model.weights'] is None


def test_default_configs_are_prefill_and_each_shipped_variant_once() -> None:
    labels = [label for label, _ in node_configs(None, list_shipped_weights(), 'cuda')]
    assert labels == ['prefill', 'mini']
    assert [label for label, _ in node_configs(None, [], 'cpu')] == ['prefill', 'mini (untrained, timing only)']


def test_an_unknown_config_is_a_user_error_naming_the_choices() -> None:
    import pytest

    from depth_completion_ros.tools.common import CliError

    with pytest.raises(CliError, match=r"unknown 'minni'.*mini, tiny, small, base.*lrru_mini_rgbd"):
        node_configs('prefill,minni', list_shipped_weights(), 'cpu')
