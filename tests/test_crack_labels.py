"""Per-crack labels (docs/data-format.md, "Per-crack labels"): each crack's own box, outline
and length, written by `python -m model labels` and read by `load_crack_labels`.

The oracles are the solver's own geometry (`dlem.cracks`: each crack rasterised alone, its
vertices and length measure) and hand-worked cases, never `model.cracks` itself.
"""

from __future__ import annotations

import copy
import shutil

import netCDF4
import numpy as np
import pytest
import xarray as xr

from dlem import config as config_mod
from dlem import dataset
from dlem.cracks import Ellipse, Polyline, Rectangle, Segment, rasterize
from model.cli import main as model_main
from model.crack_labels import load_crack_labels
from model.cracks import cell_ranges, outline_points
from model.data import load_labels
from model.io import DataError
from model.keypoints import box_to_mask, masks_to_boxes, write_labels
from test_dlem_dataset import TINY

SAMPLES = (0, 30)  # TINY's samples 0-29: 0, 1 and 2 cracks; segments, polylines, rectangles, ellipses


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A simulated TINY shard (two cracks at most) and its labels file, written by the CLI."""
    root = tmp_path_factory.mktemp("cracks")
    cfg = config_mod.validate(copy.deepcopy(TINY))
    shard = root / "shard.nc"
    dataset.write_shard(cfg, shard, *SAMPLES, progress=False)
    assert model_main(["labels", str(shard), "--out", str(root / "labels.nc")]) == 0
    with xr.open_dataset(shard) as s, xr.open_dataset(root / "labels.nc") as lab:
        loaded = {"shard": s.load(), "labels": lab.load()}  # closed before the tests edit copies
    return {"cfg": cfg, **loaded, "root": root, "shard_path": shard,
            "labels_path": root / "labels.nc"}


def test_the_tiny_shard_has_zero_one_and_two_cracks_of_every_geometry(tiny):
    shard = tiny["shard"]
    assert set(shard["n_cracks"].values.tolist()) == {0, 1, 2}
    families = shard["crack_params"].sel(param="family").values
    assert set(families[np.isfinite(families)].astype(int).tolist()) == {0, 1, 2, 3}


def test_each_crack_box_holds_its_own_vertices(tiny):
    shard, labels = tiny["shard"], tiny["labels"]
    width, height = shard.attrs["plate_width"], shard.attrs["plate_height"]
    for s in range(shard.sizes["sample"]):
        for k in range(int(shard["n_cracks"][s])):
            v = shard["crack_vertices"].values[s, k]
            v = v[np.isfinite(v).all(axis=1)] / [width, height]
            xmin, ymin, xmax, ymax = labels["crack_box"].values[s, k]
            assert (v[:, 0] >= xmin).all() and (v[:, 0] <= xmax).all(), (s, k)
            assert (v[:, 1] >= ymin).all() and (v[:, 1] <= ymax).all(), (s, k)


def test_each_crack_box_is_the_box_of_that_crack_alone_rasterised_by_the_solver(tiny):
    """Per crack: the union-box rule applied to the crack's own mask (dlem.cracks.rasterize of
    that crack only), for both box rules."""
    cfg = tiny["cfg"]
    width, height = cfg["plate"]["width"], cfg["plate"]["height"]
    for rule in ("edges", "indices"):
        path = tiny["root"] / f"labels-{rule}.nc"
        write_labels(tiny["shard_path"], path, rule)
        with xr.open_dataset(path) as labels:
            boxes = labels["crack_box"].values
        for i, s in enumerate(range(*SAMPLES)):
            _, drawn = dataset.scenario(cfg, s)
            for k, (_, crack) in enumerate(drawn):
                own = rasterize([crack], width, height, 16, 16)
                np.testing.assert_array_equal(boxes[i, k], masks_to_boxes(own[None], rule)[0])


def test_a_one_crack_samples_crack_box_is_its_union_box(tiny):
    labels = tiny["labels"]
    one = labels["n_cracks"].values == 1
    np.testing.assert_array_equal(labels["crack_box"].values[one, 0], labels["box"].values[one])


def test_the_crack_boxes_together_hold_the_union_box_and_every_crack_cell(tiny):
    shard, labels = tiny["shard"], tiny["labels"]
    for s in np.flatnonzero(labels["has_crack"].values):
        own = labels["crack_box"].values[s, :int(labels["n_cracks"][s])]
        hull = np.concatenate([own[:, :2].min(axis=0), own[:, 2:].max(axis=0)])
        np.testing.assert_array_equal(hull, labels["box"].values[s])
        covered = np.any([box_to_mask(b) for b in own], axis=0)
        mask = shard["crack_mask"].values[s] == 1
        assert covered[mask].all(), s


def test_counts_match_n_cracks_and_the_padding_is_nan(tiny):
    shard, labels = tiny["shard"], tiny["labels"]
    n = labels["n_cracks"].values
    assert labels.sizes["crack"] == shard.sizes["crack"] == 2
    ends = labels["crack_outline"].values[:, :, :2]  # every outline has two end points at least
    for name, values, axes in (("crack_box", labels["crack_box"].values, (2,)),
                               ("crack_length", labels["crack_length"].values[..., None], (2,)),
                               ("crack_outline", ends, (2, 3))):
        finite = np.isfinite(values).all(axis=axes)
        nan = np.isnan(values).all(axis=axes)
        rows = np.arange(labels.sizes["crack"])
        assert (finite == (rows < n[:, None])).all(), name
        assert (nan == (rows >= n[:, None])).all(), name
    np.testing.assert_allclose(np.nansum(labels["crack_length"].values, axis=1),
                               shard["crack_size"].values, rtol=1e-12)
    assert labels["crack_outline"].attrs["units"] == "m"
    assert labels["crack_box"].attrs["units"] == "1"


def test_open_crack_outlines_are_their_paths_and_closed_ones_their_major_axis(tiny):
    """Segment and polyline: the shard's vertices in order. Rectangle and ellipse: two points
    centred on the crack, as far apart as its length measure (long side, major axis)."""
    cfg = tiny["cfg"]
    outlines = tiny["labels"]["crack_outline"].values
    for i, s in enumerate(range(*SAMPLES)):
        for k, (_, crack) in enumerate(dataset.scenario(cfg, s)[1]):
            points = outlines[i, k][np.isfinite(outlines[i, k]).all(axis=1)]
            if not crack.closed:
                np.testing.assert_allclose(points, crack.vertices, rtol=0, atol=1e-15)
                continue
            assert len(points) == 2
            np.testing.assert_allclose(points.mean(axis=0), [crack.x, crack.y], atol=1e-12)
            np.testing.assert_allclose(np.linalg.norm(points[1] - points[0]), crack.length,
                                       rtol=1e-9)


@pytest.mark.parametrize("cls", [Rectangle, Ellipse])
@pytest.mark.parametrize("length, width, along", [(0.01, 0.002, 30.0), (0.002, 0.01, 120.0)])
def test_major_axis_of_a_closed_crack_by_hand(cls, length, width, along):
    """Centre (0.05, 0.04), rotated 30 degrees: the long axis runs along 30 degrees when the
    length is the longer side, else along 30 + 90; its half-length is the longer half-side."""
    crack = cls.from_params(x=0.05, y=0.04, length=length, width=width, angle=30.0)
    half = max(length, width) / 2
    u = np.array([np.cos(np.radians(along)), np.sin(np.radians(along))])
    expected = np.array([[0.05, 0.04] - half * u, [0.05, 0.04] + half * u])
    expected = expected[np.argsort(expected[:, 0])]
    np.testing.assert_allclose(outline_points(crack.vertices, cls.geometry), expected,
                               rtol=0, atol=1e-12)


def test_a_path_on_a_cell_edge_touches_both_cells_as_the_solver_rasterises():
    """16 m plate, 16 cells: a segment from (3, 2.5) to (5, 2.5) m starts on the edge between
    columns 2 and 3 and ends on that between 4 and 5: columns 2 to 5, row 2."""
    crack = Segment.from_params(x=4.0, y=2.5, length=2.0, angle=0.0)
    np.testing.assert_array_equal(crack.vertices, [[3.0, 2.5], [5.0, 2.5]])
    assert cell_ranges(crack.vertices, 16.0, 16.0, 16, 16).tolist() == [2, 2, 5, 2]
    rows, cols = np.nonzero(rasterize([crack], 16.0, 16.0, 16, 16))
    assert [cols.min(), rows.min(), cols.max(), rows.max()] == [2, 2, 5, 2]


@pytest.mark.parametrize("width, n", [(0.1, 16), (0.04, 16), (0.3, 16), (0.1, 7)])
def test_paths_ending_on_cell_edges_touch_the_cells_the_solver_marks(width, n):
    """Vertices exactly on every inner cell edge, in floating point: the edge computed as the
    solver computes it (c * width / n, and the previous cell's start plus width / n, which
    can differ by one ulp) decides, as in dlem.cracks.rasterize."""
    for c in range(1, n):
        e = c * width / n
        for points in ([[e, 0.3 * width], [e, 0.6 * width]], [[0.3 * width, e], [0.6 * width, e]],
                       [[e, e], [0.6 * width, 0.7 * width]], [[0.2 * width, 0.1 * width], [e, e]]):
            crack = Polyline.from_params(points=points)
            rows, cols = np.nonzero(rasterize([crack], width, width, n, n))
            assert cell_ranges(crack.vertices, width, width, n, n).tolist() == \
                [cols.min(), rows.min(), cols.max(), rows.max()], (c, points)


def test_an_unknown_geometry_has_no_outline_and_the_labels_name_the_sample(tiny, tmp_path):
    shard = shutil.copy(tiny["shard_path"], tmp_path / "shard.nc")
    with netCDF4.Dataset(shard, "a") as nc:
        nc.setncattr("crack_families", '["segment", "spiral", "rectangle", "ellipse"]')
    first_spiral = int(np.flatnonzero(
        (tiny["shard"]["crack_params"].sel(param="family").values == 1).any(axis=1))[0])
    with pytest.raises(DataError, match=rf"sample {first_spiral}, crack \d: .*'spiral'"):
        write_labels(shard, tmp_path / "labels.nc")
    assert not (tmp_path / "labels.nc").exists()


# ------------------------------------------------------------------ reader

def test_load_crack_labels_follows_load_labels_order_and_values(tiny):
    crack = load_crack_labels([tiny["labels_path"]])
    labels = load_labels([tiny["labels_path"]])
    np.testing.assert_array_equal(crack.labels.sample, labels.sample)
    np.testing.assert_array_equal(crack.exists().sum(axis=1), labels.n_cracks)
    np.testing.assert_array_equal(crack.box, tiny["labels"]["crack_box"].values)
    np.testing.assert_array_equal(crack.outline, tiny["labels"]["crack_outline"].values)


def test_load_crack_labels_pads_files_to_the_widest_crack_and_point_dimensions(tiny, tmp_path):
    """Two files of one set-up: samples 0-14 as written, 15-29 with one crack row and outline
    points cut to those it uses (only one-crack and uncracked samples kept)."""
    labels = tiny["labels"]
    first = labels.isel(sample=slice(0, 15))
    rest = labels.isel(sample=slice(15, 30))
    rest = rest.isel(sample=np.flatnonzero(rest["n_cracks"].values <= 1))
    used = int(np.isfinite(rest["crack_outline"].values[:, 0, :, 0]).sum(axis=1).max())
    rest = rest.isel(crack=slice(0, 1), point=slice(0, used))
    first.to_netcdf(tmp_path / "a.nc")
    rest.to_netcdf(tmp_path / "b.nc")
    crack = load_crack_labels([tmp_path / "b.nc", tmp_path / "a.nc"])
    assert crack.box.shape[1:] == (2, 4)
    assert crack.outline.shape[1:] == labels["crack_outline"].shape[1:]
    assert used < crack.outline.shape[2]
    rows = np.searchsorted(labels["sample"].values, crack.labels.sample)
    np.testing.assert_array_equal(crack.box, labels["crack_box"].values[rows])
    np.testing.assert_array_equal(crack.outline, labels["crack_outline"].values[rows])


def _edited(tiny, tmp_path, edit):
    path = shutil.copy(tiny["labels_path"], tmp_path / "labels.nc")
    with netCDF4.Dataset(path, "a") as nc:
        edit(nc)
    return path


def test_a_nan_box_of_an_existing_crack_is_refused_naming_file_and_sample(tiny, tmp_path):
    s = int(np.flatnonzero(tiny["labels"]["n_cracks"].values == 2)[0])
    path = _edited(tiny, tmp_path, lambda nc: nc["crack_box"].__setitem__((s, 1, 2), np.nan))
    sample = int(tiny["labels"]["sample"][s])
    with pytest.raises(DataError, match=rf"labels.nc: crack_box of sample\(s\) \[{sample}\] is "
                                        "not finite where a crack exists"):
        load_crack_labels([path])


def test_an_outline_with_one_finite_point_is_refused(tiny, tmp_path):
    s = int(np.flatnonzero(tiny["labels"]["n_cracks"].values >= 1)[0])
    path = _edited(tiny, tmp_path, lambda nc: nc["crack_outline"].__setitem__((s, 0, 1), np.nan))
    with pytest.raises(DataError, match=r"crack_outline of sample\(s\) \[\d+\] is not finite"):
        load_crack_labels([path])


def test_a_finite_value_in_the_padding_is_refused(tiny, tmp_path):
    s = int(np.flatnonzero(tiny["labels"]["n_cracks"].values == 0)[0])
    path = _edited(tiny, tmp_path, lambda nc: nc["crack_length"].__setitem__((s, 0), 0.01))
    with pytest.raises(DataError, match=r"crack_length of sample\(s\) \[\d+\] is not NaN "
                                        "beyond n_cracks"):
        load_crack_labels([path])


def test_a_labels_file_without_per_crack_variables_is_refused_with_the_fix(tiny, tmp_path):
    tiny["labels"].drop_vars(["crack_box", "crack_outline", "crack_length"]).to_netcdf(
        tmp_path / "old.nc")
    assert load_labels([tmp_path / "old.nc"]).n_cracks.size == SAMPLES[1]  # still read
    with pytest.raises(DataError, match=r"old.nc lacks the per-crack variable.*python -m model "
                                        "labels"):
        load_crack_labels([tmp_path / "old.nc"])


def test_the_labels_scored_as_predictions_of_themselves_are_perfect_detections(tiny):
    """The per-crack labels in the detection metrics' layout: every score is 1 (or 0 for a
    count no sample has), every error 0."""
    from model.detection import count_table, detection_scores, plate_matches

    crack = load_crack_labels([tiny["labels_path"]])
    score = np.where(crack.exists(), 1.0, np.nan)
    scores = detection_scores(plate_matches(crack.box, score, crack.box,
                                            pred_outline=crack.outline,
                                            true_outline=crack.outline))
    assert scores["cracks"] == scores["predictions"] == scores["outline_matched"] > 0
    for name in ("AP50", "AP50_95", "precision50", "recall50", "matched_IoU", "count_accuracy"):
        assert scores[name] == 1.0, name
    assert scores["false_alarm_rate"] == 0.0
    assert scores["endpoint_error_m"] == 0.0 and scores["chamfer_m"] == pytest.approx(0, abs=1e-15)
    rows = count_table(plate_matches(crack.box, score, crack.box))
    assert [r["samples"] for r in rows] == np.bincount(crack.labels.n_cracks, minlength=3).tolist()
