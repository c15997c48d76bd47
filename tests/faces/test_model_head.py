"""The soft-argmax head: known heatmaps in, their expected positions out (hand-computed pixels).

The heatmap logits are set with a forward hook on the layer that produces them, so everything after
it (temperature, spatial softmax, marginals, coordinate grid, output order) is the real forward pass.
A heatmap cell of stride s covers pixel columns c*s .. c*s + s-1; pixel column j holds keypoint
x = j + PIXEL_CENTRE, so the cell's centre is x = c*s + (s - 1)/2 + PIXEL_CENTRE (rows alike).
"""

import pytest
import torch

from kplab.faces.training.layout import PIXEL_CENTRE
from kplab.faces.training.model import ModelConfig, build_model

PEAK = 40.0  # logit at the peak; every other cell 0, so off-peak mass is under 200 * e^-40


def model_with_heatmaps(stride: int, logits: torch.Tensor):
    """A heatmap model whose head layer outputs `logits` (N, 15, S, S) whatever the image."""
    model = build_model(ModelConfig(widths=(4, 4, 8, 8), blocks=(0, 0, 0, 0), head_width=4,
                                    heatmap_stride=stride)).eval()
    model.to_heatmaps.register_forward_hook(lambda module, inputs, output: logits)
    return model


def cell_centre_px(cell: int, stride: int) -> float:
    return cell * stride + (stride - 1) / 2 + PIXEL_CENTRE


@pytest.mark.parametrize("stride", [8, 4])
def test_a_sharp_peak_reads_out_at_its_cell_centre(stride):
    size = 96 // stride
    logits = torch.zeros(2, 15, size, size)
    cells = [((3 * k + 1) % size, (5 * k + 2) % size) for k in range(15)]  # (row, col), rows != cols
    for k, (row, col) in enumerate(cells):
        logits[0, k, row, col] = PEAK
        logits[1, k, col, row] = PEAK  # the transposed map: x and y trade places
    with torch.no_grad():
        out = model_with_heatmaps(stride, logits)(torch.zeros(2, 1, 96, 96)).view(2, 15, 2) * 48 + 48  # pixels
    for k, (row, col) in enumerate(cells):
        assert out[0, k].tolist() == pytest.approx([cell_centre_px(col, stride), cell_centre_px(row, stride)], abs=1e-4)
        assert out[1, k].tolist() == pytest.approx([cell_centre_px(row, stride), cell_centre_px(col, stride)], abs=1e-4)
    # By hand for the shipped stride 8: keypoint 0's peak at row 1, column 2 is pixel (20.5, 12.5) with 1-based labels.
    if stride == 8 and PIXEL_CENTRE == 1.0:
        assert out[0, 0].tolist() == pytest.approx([20.5, 12.5], abs=1e-4)


def test_the_readout_is_an_expectation_not_an_argmax():
    logits = torch.zeros(1, 15, 12, 12)
    logits[0, :, 6, 2] = PEAK  # two equal peaks on row 6, columns 2 and 9 ...
    logits[0, :, 6, 9] = PEAK
    logits[0, 4, 0, 0] = PEAK + torch.log(torch.tensor(3.0))  # ... and keypoint 4 weighted 3 : 1 : 1 toward (0, 0)
    with torch.no_grad():
        out = model_with_heatmaps(8, logits)(torch.zeros(1, 1, 96, 96)).view(15, 2) * 48 + 48
    mid = (cell_centre_px(2, 8) + cell_centre_px(9, 8)) / 2
    assert out[0].tolist() == pytest.approx([mid, cell_centre_px(6, 8)], abs=1e-4)
    expect_x = (3 * cell_centre_px(0, 8) + cell_centre_px(2, 8) + cell_centre_px(9, 8)) / 5
    expect_y = (3 * cell_centre_px(0, 8) + 2 * cell_centre_px(6, 8)) / 5
    assert out[4].tolist() == pytest.approx([expect_x, expect_y], abs=1e-4)


def test_a_flat_heatmap_reads_out_at_the_image_centre():
    # The mean of all pixel positions j + PIXEL_CENTRE, j = 0..95: 47.5 + PIXEL_CENTRE on both axes.
    with torch.no_grad():
        out = model_with_heatmaps(8, torch.zeros(1, 15, 12, 12))(torch.zeros(1, 1, 96, 96)).view(15, 2) * 48 + 48
    assert out.flatten().tolist() == pytest.approx([47.5 + PIXEL_CENTRE] * 30, abs=1e-4)


def test_the_learned_temperature_sharpens_the_softmax():
    logits = torch.zeros(1, 15, 12, 12)
    logits[0, :, 6, 9] = 1.0  # a weak peak: at temperature 1 most mass is spread out
    model = model_with_heatmaps(8, logits)
    with torch.no_grad():
        soft = model(torch.zeros(1, 1, 96, 96)).view(15, 2)[0, 0].item() * 48 + 48
        model.log_beta.fill_(torch.log(torch.tensor(PEAK)))  # beta = 40: the same map, sharp
        sharp = model(torch.zeros(1, 1, 96, 96)).view(15, 2)[0, 0].item() * 48 + 48
    e = torch.e
    # Weight e on the peak cell, 1 on the other 143; those sum to 144 * mean - peak position.
    x9 = cell_centre_px(9, 8)
    assert soft == pytest.approx((e * x9 + 144 * (47.5 + PIXEL_CENTRE) - x9) / (e + 143), abs=1e-4)
    assert sharp == pytest.approx(cell_centre_px(9, 8), abs=1e-4)
