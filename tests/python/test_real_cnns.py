"""Static int8 on real images (issue 4), data from scripts/fetch_data.sh:

- the pretrained MNIST CNN on the 5000 real OpenCV digits: calibrated on 500
  (every tenth image, 50 per class), tested on the other 4500; int8 top-1
  within 0.3 points of fp32 with each observer (min/max, and the histogram's
  entropy, percentile and MSE rules);
- a small CNN trained here on Fashion-MNIST (one epoch on 12k images): int8
  within 0.5 points of fp32 on the 10k test images;
- QAT (issue 5) on the same CNN with 3-bit weights, where post-training
  quantization visibly loses accuracy: one QAT pass over another 12k images
  recovers it (>= PTQ and within 0.3 points of fp32), and the converted int8
  model's outputs equal the QAT model's on all 10k test images.
  (benchmarks/bench_qat_fashion.py runs the full-epoch version.)
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


@pytest.mark.parametrize("observer", ["min_max", "entropy", "percentile", "mse"])
def test_pretrained_mnist_cnn_on_real_digits(observer):
    config = qext.StaticConfig() if observer == "min_max" else \
        qext.StaticConfig(observer="histogram", histogram_method=observer)
    model = _load(real_data.pretrained_mnist_cnn)
    x, y = _load(real_data.opencv_digits)
    calib = torch.zeros(len(x), dtype=torch.bool)
    calib[::10] = True
    x_test, y_test = x[~calib], y[~calib]
    batches = list(x[calib].split(50))
    assert len(batches) == 10 and len(x_test) == 4500

    fp32 = accuracy(model, x_test, y_test)
    int8_model = qext.quantize_static(model, batches, config, example_inputs=(batches[0],))
    int8 = accuracy(int8_model, x_test, y_test)
    print(f"pretrained MNIST CNN on OpenCV digits: fp32 {fp32:.2f} %, int8 ({observer}) {int8:.2f} %")
    assert fp32 > 98.5  # the data and model are the real ones
    assert abs(fp32 - int8) <= 0.3
    report = qext.report(int8_model)
    assert all(layer.status == "int8" for layer in report.layers)


@pytest.fixture(scope="module")
def fashion_fp32(fashion):
    (x_train, y_train), _ = fashion
    torch.manual_seed(0)
    return train(FashionCNN(), x_train[:12000], y_train[:12000])


def test_small_cnn_on_fashion_mnist(fashion, fashion_fp32):
    (x_train, _), (x_test, y_test) = fashion
    model = fashion_fp32
    fp32 = accuracy(model, x_test, y_test)
    calibration = list(x_train[50000:51000].split(100))
    int8_model = qext.quantize_static(model, calibration, example_inputs=(calibration[0],))
    int8 = accuracy(int8_model, x_test, y_test)
    print(f"Fashion-MNIST CNN: fp32 {fp32:.2f} %, int8 {int8:.2f} %")
    assert fp32 > 80
    assert abs(fp32 - int8) <= 0.5
    kinds = {layer.kind for layer in qext.report(int8_model).layers if layer.status == "int8"}
    assert {"conv2d", "linear", "add"} <= kinds


def test_qat_recovers_low_bit_accuracy_on_fashion_mnist(fashion, fashion_fp32):
    (x_train, y_train), (x_test, y_test) = fashion
    fp32 = accuracy(fashion_fp32, x_test, y_test)
    calibration = list(x_train[50000:51000].split(100))
    ptq_model = qext.quantize_static(
        fashion_fp32, calibration, qext.StaticConfig(weight_bits=3), example_inputs=(calibration[0],)
    )
    ptq = accuracy(ptq_model, x_test, y_test)

    qat_model = qext.qat.prepare(fashion_fp32, qext.qat.QatConfig(weight_bits=3))
    train(qat_model, x_train[12000:24000], y_train[12000:24000], lr=1e-4)
    int8_model = qext.qat.convert(qat_model, x_test[:1])
    qat = accuracy(int8_model, x_test, y_test)
    print(f"Fashion-MNIST 3-bit weights: fp32 {fp32:.2f} %, PTQ {ptq:.2f} %, QAT {qat:.2f} %")
    assert ptq < fp32 - 1.0  # the setting really loses accuracy without QAT
    assert qat >= ptq and qat >= fp32 - 0.3
    with torch.no_grad():
        for xb in x_test.split(1000):
            assert torch.equal(qat_model(xb), int8_model(xb))
