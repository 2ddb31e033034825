"""Issue 17, on real frames from ../shared/data: a truncated image is one line naming the file (exit 2) in eval
and make-bag, and a failed make-bag leaves no bag; make-bag reads every loader, and the data kinds in help,
errors and README come from one table; eval's empty and mismatched requests are one line."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import assert_one_line_error, run_cli

from depth_completion_ros.data.errors import DataError
from depth_completion_ros.data.loaders import read_depth_png
from depth_completion_ros.data.spec import DATA_KINDS, kinds_help
from depth_completion_ros.ros import bagio
from depth_completion_ros.tools.make_bag import MAKE_BAG_KINDS, MAKE_BAG_SYNTAX, make_bag

REPO_ROOT = Path(__file__).resolve().parents[1]


def truncated_copy(source: Path, target: Path) -> Path:
    """The first third of a real file: what an interrupted copy or download leaves."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes()[:source.stat().st_size // 3])
    return target


def kitti_object_copy(kitti_object_dir: Path, root: Path, frames: tuple[str, ...], truncated: str) -> Path:
    """A KITTI object folder of real ``frames`` (links), with the image of ``truncated`` cut short."""
    for frame in frames:
        for folder, ext in (('image_2', 'png'), ('velodyne', 'bin'), ('calib', 'txt')):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f'{frame}.{ext}').symlink_to(kitti_object_dir / folder / f'{frame}.{ext}')
    image = root / 'image_2' / f'{truncated}.png'
    image.unlink()
    truncated_copy(kitti_object_dir / 'image_2' / f'{truncated}.png', image)
    return root


# ------------------------------------------------------------------------------------------------ bad files
def test_make_bag_truncated_png_midway_is_one_line_and_leaves_no_bag(kitti_object_dir: Path, tmp_path: Path,
                                                                      capsys) -> None:
    data = kitti_object_copy(kitti_object_dir, tmp_path / 'kitti', ('000000', '000003'), truncated='000003')
    out = tmp_path / 'bag'
    status, _out, err = run_cli(['make-bag', '--from', f'kitti-object:{data}', '--out', str(out)], capsys)
    assert_one_line_error(status, err, 'make-bag', str(data / 'image_2' / '000003.png'), 'truncated',
                          'copy it again')
    assert not out.exists()                                        # no playable 1-of-2-frame bag
    assert sorted(p.name for p in tmp_path.iterdir()) == ['kitti']  # and no temporary folder
    (data / 'image_2' / '000003.png').unlink()                     # the fix: the file copied again
    (data / 'image_2' / '000003.png').symlink_to(kitti_object_dir / 'image_2' / '000003.png')
    status, _out, err = run_cli(['make-bag', '--from', f'kitti-object:{data}', '--out', str(out)], capsys)
    assert status == 0, err                                        # the retry is not blocked by a leftover


def test_eval_truncated_png_is_one_line_naming_the_file(kitti_object_dir: Path, random_weights: Path,
                                                        tmp_path: Path, capsys) -> None:
    data = kitti_object_copy(kitti_object_dir, tmp_path / 'kitti', ('000000',), truncated='000000')
    status, _out, err = run_cli(['eval', '--data', f'kitti-object:{data}', '--weights', str(random_weights),
                                 '--device', 'cpu'], capsys)
    assert_one_line_error(status, err, 'eval', str(data / 'image_2' / '000000.png'), 'truncated')


def test_truncated_and_non_image_depth_files_name_the_file(nyu_dir: Path, tmp_path: Path) -> None:
    depth = sorted((nyu_dir / 'depth').iterdir())[0]
    with pytest.raises(DataError, match=r'truncated.*copy it again') as info:
        read_depth_png(truncated_copy(depth, tmp_path / depth.name), 1000.0)
    assert str(tmp_path / depth.name) in str(info.value)
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(DataError, match='notes.png: cannot read this image'):
        read_depth_png(tmp_path / 'notes.png', 1000.0)


# ------------------------------------------------------------------------------------------ make-bag kinds
def _topics(bag: Path) -> set[str]:
    return set(bagio.bag_topics(bag))


def test_make_bag_reads_a_kitti_raw_drive(shared_data: Path, tmp_path: Path) -> None:
    report = make_bag(f'kitti-raw:{shared_data / "kitti_raw_2011_09_26_udacity_seq"}?frames=0-1', tmp_path / 'raw')
    assert report['frames'] == 2
    assert {bagio.IMAGE_TOPIC, bagio.CAMERA_INFO_TOPIC, bagio.POINTS_TOPIC, bagio.TF_STATIC_TOPIC} <= \
        _topics(tmp_path / 'raw')


def test_make_bag_reads_7scenes_as_a_depth_camera(shared_data: Path, tmp_path: Path) -> None:
    report = make_bag(f'7scenes:{shared_data / "sevenscenes_redkitchen"}', tmp_path / 'kitchen', frames=1)
    assert report['frames'] == 1
    topics = _topics(tmp_path / 'kitchen')
    assert bagio.DEPTH_TOPIC in topics and bagio.POINTS_TOPIC not in topics


def test_make_bag_reads_kitti_dc_as_points_that_land_on_the_same_pixels(shared_data: Path, tmp_path: Path) -> None:
    """A KITTI-DC frame has a projected depth image, no scan: its pixels become camera-frame points
    (identity extrinsics) that the node projects back onto the very same pixels; the ground truth is kept."""
    import numpy as np

    from depth_completion_ros.core.conversions import pointcloud2_to_arrays
    from depth_completion_ros.core.projection import project_points
    from depth_completion_ros.data.loaders import open_source

    spec = f'kitti-dc-gt:{shared_data / "kitti_dc_2011_09_30_weison"}'
    make_bag(spec, tmp_path / 'dc', frames=1)
    assert bagio.GT_DEPTH_TOPIC in _topics(tmp_path / 'dc')
    cloud = next(msg for raw, msg in bagio.read_messages(tmp_path / 'dc', [bagio.POINTS_TOPIC]))
    sample = open_source(spec)[0]
    again = project_points(pointcloud2_to_arrays(cloud).xyz.astype(np.float64), sample.camera)
    np.testing.assert_allclose(again, sample.sparse, atol=1e-3)


def test_one_table_of_data_kinds_in_help_errors_and_readme(capsys) -> None:
    make_bag_kinds = kinds_help(MAKE_BAG_KINDS, MAKE_BAG_SYNTAX)
    status, out, _err = run_cli(['make-bag', '--help'], capsys)
    help_text = ' '.join(out.split())
    assert status == 0
    for form in make_bag_kinds.split(', '):
        assert form in help_text.replace('- ', '-')      # argparse may wrap after a hyphen
    assert 'kitti-raw-accum' not in help_text and 'bag:PATH' not in help_text
    status, out, _err = run_cli(['eval', '--help'], capsys)
    eval_help = ' '.join(out.split())
    assert all(DATA_KINDS[kind][0] in eval_help for kind in DATA_KINDS)
    status, _out, err = run_cli(['eval', '--data', 'camera:/tmp'], capsys)
    assert kinds_help() in err                           # the error lists the same kinds as the help
    status, _out, err = run_cli(['make-bag', '--from', 'camera:/tmp', '--out', '/tmp/never'], capsys)
    assert make_bag_kinds in err
    readme = ' '.join((REPO_ROOT / 'README.md').read_text().replace('`', '').split())
    assert f'make-bag --from reads {make_bag_kinds}' in readme

# ---------------------------------------------------------------------------------------------------- eval
def test_eval_max_frames_zero_is_one_line(capsys) -> None:
    status, out, err = run_cli(['eval', '--data', 'synthetic:room', '--synthetic-frames', '1', '--max-frames', '0'],
                               capsys)
    assert_one_line_error(status, err, 'eval', '--max-frames 0', '1 or more')
    assert 'nan' not in out.lower()


def test_eval_variant_and_weights_mismatch_names_both(capsys) -> None:
    status, _out, err = run_cli(['eval', '--data', 'synthetic:room', '--synthetic-frames', '1', '--variant', 'base',
                                 '--weights', 'lrru_mini'], capsys)
    assert_one_line_error(status, err, 'eval', '--variant base', '--weights lrru_mini', 'LRRU-mini')


def test_kinds_table_covers_every_loader() -> None:
    assert set(MAKE_BAG_KINDS) == set(DATA_KINDS) - {'kitti-raw-accum', 'bag'}
