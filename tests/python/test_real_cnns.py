"""Static int8 on real images (issue 4), data from scripts/fetch_data.sh:

- the pretrained MNIST CNN on the 5000 real OpenCV digits: calibrated on 500
  (every tenth image, 50 per class), tested on the other 4500; int8 top-1
  within 0.3 points of fp32;
- a small CNN trained here on Fashion-MNIST (one epoch on 12k images): int8
  within 0.5 points of fp32 on the 10k test images.
"""

import sys
from pathlib import Path

import pytest
import torch

import qext

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import real_data  # noqa: E402
from fashion_cnn import FashionCNN, accuracy, train  # noqa: E402


def _load(loader, *args):
    try:
        return loader(*args)
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def fashion():
    train_set = _load(real_data.fashion_mnist, "train")
    test_set = _load(real_data.fashion_mnist, "t10k")
    return train_set, test_set


def test_pretrained_mnist_cnn_on_real_digits():
    model = _load(real_data.pretrained_mnist_cnn)
    x, y = _load(real_data.opencv_digits)
    calib = torch.zeros(len(x), dtype=torch.bool)
    calib[::10] = True
    x_test, y_test = x[~calib], y[~calib]
    batches = list(x[calib].split(50))
    assert len(batches) == 10 and len(x_test) == 4500

    fp32 = accuracy(model, x_test, y_test)
    int8_model = qext.quantize_static(model, batches, example_inputs=(batches[0],))
    int8 = accuracy(int8_model, x_test, y_test)
    print(f"pretrained MNIST CNN on OpenCV digits: fp32 {fp32:.2f} %, int8 {int8:.2f} %")
    assert fp32 > 98.5  # the data and model are the real ones
    assert abs(fp32 - int8) <= 0.3
    report = qext.report(int8_model)
    assert all(layer.status == "int8" for layer in report.layers)


def test_small_cnn_on_fashion_mnist(fashion):
    (x_train, y_train), (x_test, y_test) = fashion
    torch.manual_seed(0)
    model = train(FashionCNN(), x_train[:12000], y_train[:12000])
    fp32 = accuracy(model, x_test, y_test)
    calibration = list(x_train[50000:51000].split(100))
    int8_model = qext.quantize_static(model, calibration, example_inputs=(calibration[0],))
    int8 = accuracy(int8_model, x_test, y_test)
    print(f"Fashion-MNIST CNN: fp32 {fp32:.2f} %, int8 {int8:.2f} %")
    assert fp32 > 80
    assert abs(fp32 - int8) <= 0.5
    kinds = {layer.kind for layer in qext.report(int8_model).layers if layer.status == "int8"}
    assert {"conv2d", "linear", "add"} <= kinds
