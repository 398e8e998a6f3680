"""Key points from masks (paper §3.5, docs/data-format.md "Key-point labels")."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.io import DataError
from model.keypoints import box_to_mask, mask_to_box, masks_to_boxes, write_labels


def _mask(cells, shape=(16, 16)):
    mask = np.zeros(shape, np.uint8)
    for r, c in cells:
        mask[r, c] = 1
    return mask


def test_single_cell_gets_one_cell_margin_on_each_side():
    # the contract's worked example: column 5 -> xmin = 4/16, xmax = 7/16
    box = mask_to_box(_mask([(9, 5)]))
    np.testing.assert_allclose(box, [4 / 16, 8 / 16, 7 / 16, 11 / 16])


def test_margin_is_clipped_at_the_lower_left_corner():
    np.testing.assert_allclose(mask_to_box(_mask([(0, 0)])), [0, 0, 2 / 16, 2 / 16])


def test_margin_is_clipped_at_the_upper_right_corner():
    np.testing.assert_allclose(mask_to_box(_mask([(15, 15)])), [14 / 16, 14 / 16, 1, 1])


def test_l_shape_box_spans_both_arms():
    # vertical arm column 3, rows 2..6; horizontal arm row 2, columns 3..8
    cells = [(r, 3) for r in range(2, 7)] + [(2, c) for c in range(3, 9)]
    np.testing.assert_allclose(mask_to_box(_mask(cells)), [2 / 16, 1 / 16, 10 / 16, 8 / 16])


def test_rows_are_y_and_columns_are_x():
    box = mask_to_box(_mask([(12, 1)]))  # row 12 (high y), column 1 (low x)
    assert box[0] < 0.2 and box[1] > 0.6


def test_non_square_mask_normalises_x_by_width_and_y_by_height():
    np.testing.assert_allclose(mask_to_box(_mask([(1, 1)], (4, 8))), [0, 0, 3 / 8, 3 / 4])


def test_empty_mask_has_no_box():
    assert mask_to_box(np.zeros((16, 16), np.uint8)) is None


def test_values_other_than_one_are_not_crack_cells():
    assert mask_to_box(np.full((16, 16), 2, np.uint8)) is None


def test_batched_boxes_are_worked_per_row_and_empty_rows_are_nan():
    masks = np.stack([_mask([(9, 5)]), np.zeros((16, 16), np.uint8), _mask([(0, 0), (3, 7)])])
    boxes = masks_to_boxes(masks)
    assert boxes.shape == (3, 4)
    assert np.isnan(boxes[1]).all()
    # row 0: column 5 -> [4, 7], row 9 -> [8, 11]; row 2: columns 0..7 -> [0 (clipped), 9],
    # rows 0..3 -> [0 (clipped), 5]
    np.testing.assert_allclose(boxes[0], np.array([4, 8, 7, 11]) / 16)
    np.testing.assert_allclose(boxes[2], np.array([0, 0, 9, 5]) / 16)


def test_box_to_mask_marks_cells_sharing_area_only():
    mask = box_to_mask(np.array([4, 8, 7, 11]) / 16)
    assert mask.sum() == 9 and mask[8:11, 4:7].all()


def test_box_to_mask_of_inverted_box_is_empty():
    assert box_to_mask(np.array([0.5, 0.5, 0.4, 0.6])).sum() == 0


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint8, (16, 16), elements=st.sampled_from([0, 0, 0, 0, 1])))
def test_box_contains_every_crack_cell(mask):
    box = mask_to_box(mask)
    if not mask.any():
        assert box is None
        return
    assert np.all((box >= 0) & (box <= 1)) and box[0] < box[2] and box[1] < box[3]
    covered = box_to_mask(box)
    assert np.all(covered[mask == 1] == 1)
    # and the box is the tightest one-cell-margin box: no wider than needed
    rows, cols = np.nonzero(mask)
    assert box[2] - box[0] <= (cols.max() - cols.min() + 3) / 16 + 1e-12
    assert box[3] - box[1] <= (rows.max() - rows.min() + 3) / 16 + 1e-12


def test_labels_file_follows_the_contract(contract_data):
    with xr.open_dataset(contract_data["labels"][0]) as labels, \
            xr.open_dataset(contract_data["shards"][0]) as shard:
        np.testing.assert_array_equal(labels["sample"], shard["sample"])
        assert list(labels["coord"].values) == ["xmin", "ymin", "xmax", "ymax"]
        assert labels["box"].dtype == np.float64 and labels["has_crack"].dtype == bool
        assert labels["n_cracks"].dtype == np.int32
        np.testing.assert_array_equal(labels["has_crack"], shard["n_cracks"] > 0)
        assert np.isnan(labels["box"].values[~labels["has_crack"].values]).all()
        rows, cols = np.nonzero(shard["crack_mask"].values[3] == 1)  # the rule, by hand
        expected = [max(cols.min() - 1, 0), max(rows.min() - 1, 0), min(cols.max() + 2, 16),
                    min(rows.max() + 2, 16)]
        np.testing.assert_allclose(labels["box"].values[3], np.array(expected) / 16)
        np.testing.assert_array_equal(labels["crack_size"], shard["crack_size"])
        assert labels["crack_size"].attrs["units"] == "m"
        assert all("units" in labels[v].attrs for v in ("box", "has_crack", "n_cracks"))


def test_write_labels_names_a_shard_lacking_crack_mask(tmp_path, contract_data):
    with xr.open_dataset(contract_data["shards"][0]) as shard:
        shard.drop_vars("crack_mask").to_netcdf(tmp_path / "bad.nc")
    with pytest.raises(DataError, match="crack_mask"):
        write_labels(tmp_path / "bad.nc", tmp_path / "out.nc")
    assert not (tmp_path / "out.nc").exists()


def test_write_labels_rejects_a_corrupt_file(tmp_path):
    (tmp_path / "corrupt.nc").write_bytes(b"not a netcdf file")
    with pytest.raises(DataError, match="not a readable NetCDF"):
        write_labels(tmp_path / "corrupt.nc", tmp_path / "out.nc")
