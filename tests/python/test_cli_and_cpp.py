"""The qext CLI, and models crossing between Python and the C++ example
programs (built by the CMake build in build/python)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import qext
from models import Block

ROOT = Path(__file__).resolve().parents[2]
CPP = ROOT / "build" / "python" / "cpp_examples"
EXAMPLE = ROOT / "examples" / "digits_mlp.pt"


def qext_cli(*args):
    return subprocess.run([sys.executable, "-m", "qext.cli", *map(str, args)], capture_output=True, text=True, timeout=300)


def need_cpp_examples():
    if not (CPP / "quantize_model").exists():
        pytest.skip("C++ examples not built; run scripts/setup.sh (builds build/python)")


def test_cli_quantize_prints_report_and_saves(tmp_path):
    out = tmp_path / "q.pt"
    result = qext_cli("quantize", EXAMPLE, out, "--mode", "dynamic", "--exclude", "layers.6")
    assert result.returncode == 0, result.stderr
    assert "layers.6  linear  float (excluded by pattern 'layers.6')" in result.stdout
    assert "3 of 4 layers int8" in result.stdout
    report = qext.report(qext.load(out))
    assert [l.status for l in report.layers] == ["int8", "int8", "int8", "float"]
    shown = qext_cli("report", out)
    assert shown.returncode == 0 and "3 of 4 layers int8" in shown.stdout


def test_cli_failures_are_one_line_and_leave_no_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    out = tmp_path / "out.pt"
    result = qext_cli("quantize", junk, out)
    assert result.returncode == 1
    assert result.stderr.startswith("qext: error: qext::load:") and result.stderr.count("\n") == 1
    assert not out.exists()
    result = qext_cli("quantize", EXAMPLE, tmp_path / "missing" / "out.pt")
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert qext_cli("quantize", EXAMPLE, EXAMPLE).returncode == 1
    assert qext_cli("--help").returncode == 0 and "quantize" in qext_cli("--help").stdout


def test_cli_info_lists_the_kernels_of_each_path():
    for isa in qext.supported_isas():
        result = subprocess.run([sys.executable, "-m", "qext.cli", "info"], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "QEXT_ISA": isa})
        assert result.returncode == 0, result.stderr
        assert f"kernel path: {isa}" in result.stdout
        for family in ("gemm", "depthwise", "grouped", "lowbit_gemm", "quantize", "elementwise", "lut", "pooling",
                       "attention"):
            assert f"  {family}" in result.stdout
        # Only where it helps: the AVX2 path points at its fast precisions.
        assert ("--weight-bits 7 --activation-bits 7" in result.stdout) == (isa == "avx2")
    assert set(qext.kernels_in_use()) == {"gemm", "depthwise", "grouped", "lowbit_gemm", "quantize", "elementwise", "lut",
                                          "pooling", "attention"}


def test_python_quantized_model_runs_in_cpp(tmp_path):
    need_cpp_examples()
    torch.manual_seed(0)
    q = qext.quantize_dynamic(Block(32, 64).eval())
    path, x_path, y_path = tmp_path / "q.pt", tmp_path / "x.pt", tmp_path / "y.pt"
    qext.save(q, path)
    x = torch.randn(5, 32)
    torch.save(x, x_path)  # the zip format torch::pickle_load reads
    result = subprocess.run([CPP / "run_model", path, y_path, "--input-shape", "5,32", "--input", x_path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        assert torch.equal(torch.load(y_path), q(x))


def test_cpp_quantized_model_runs_in_python(tmp_path):
    need_cpp_examples()
    out = tmp_path / "cpp_int8.pt"
    result = subprocess.run(
        [CPP / "quantize_model", EXAMPLE, out, "--input-shape", "4,64", "--check-max-abs-error", "0.5"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "4 of 4 layers int8" in result.stdout
    from_cpp = qext.load(out)
    from_python = qext.quantize_dynamic(str(EXAMPLE))
    x = torch.rand(4, 64) * 16
    with torch.no_grad():
        assert torch.equal(from_cpp(x), from_python(x))
    assert qext.report(from_cpp).quantized == 4


def test_low_bit_weights_from_the_cli_and_the_cpp_example(tmp_path):
    need_cpp_examples()
    cli_out, cpp_out = tmp_path / "cli_int4.pt", tmp_path / "cpp_int4.pt"
    r = qext_cli("quantize", EXAMPLE, cli_out, "--weight-bits", "4", "--group-size", "32")
    assert r.returncode == 0, r.stderr
    assert "4 of 4 layers int4" in r.stdout
    r = subprocess.run([CPP / "quantize_model", EXAMPLE, cpp_out, "--input-shape", "4,64", "--weight-bits", "4",
                        "--group-size", "32", "--check-max-abs-error", "2.0"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "4 of 4 layers int4" in r.stdout
    x = torch.rand(4, 64) * 16
    from_cli, from_cpp = qext.load(cli_out), qext.load(cpp_out)
    with torch.no_grad():
        assert torch.equal(from_cli(x), from_cpp(x))
    assert {l.status for l in qext.report(from_cpp).layers} == {"int4"}
    r = qext_cli("quantize", EXAMPLE, tmp_path / "x.pt", "--weight-bits", "3")
    assert r.returncode == 1 and "weight_bits must be 8, 7, 4, 2 or 1" in r.stderr
    r = subprocess.run([CPP / "quantize_model", EXAMPLE, tmp_path / "y.pt", "--input-shape", "4,64", "--weight-bits", "4.5"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "expected an integer" in r.stderr


def test_cpp_example_rejects_bad_arguments(tmp_path):
    need_cpp_examples()
    result = subprocess.run([CPP / "quantize_model", EXAMPLE, tmp_path / "o.pt", "--input-shape", "4,x"], capture_output=True, text=True)
    assert result.returncode == 2 and "bad --input-shape" in result.stderr
    result = subprocess.run([CPP / "quantize_model", EXAMPLE, tmp_path / "o.pt", "--input-shape", "4,63"], capture_output=True, text=True)
    assert result.returncode == 1 and "error" in result.stderr
    assert not (tmp_path / "o.pt").exists()


def test_cli_static_mode(tmp_path):
    from models import LeNet

    torch.manual_seed(0)
    model = LeNet().eval()
    src, out, calib = tmp_path / "lenet.pt", tmp_path / "lenet_int8.pt", tmp_path / "calib.pt"
    torch.jit.save(torch.jit.script(model), str(src))
    torch.save([torch.randn(4, 3, 32, 32) for _ in range(4)], calib)
    result = qext_cli("quantize", src, out, "--mode", "static", "--calib", calib)
    assert result.returncode == 0, result.stderr
    assert "5 of 5 layers int8" in result.stdout
    assert qext.report(qext.load(out)).mode == "static"
    missing = qext_cli("quantize", src, tmp_path / "x.pt", "--mode", "static")
    assert missing.returncode == 1 and "--calib" in missing.stderr
    calib.write_bytes(b"garbage")
    bad = qext_cli("quantize", src, tmp_path / "x.pt", "--mode", "static", "--calib", calib)
    assert bad.returncode == 1 and "not a torch.save'd list" in bad.stderr
    assert not (tmp_path / "x.pt").exists()


def test_cli_refuses_options_of_the_other_mode_and_bad_outputs_up_front(tmp_path):
    from models import LeNet

    src, calib = tmp_path / "lenet.pt", tmp_path / "calib.pt"
    torch.jit.save(torch.jit.script(LeNet().eval()), str(src))
    torch.save(torch.randn(40, 3, 32, 32), calib)  # one tensor: batches of 32
    for extra in (["--include", "fc1"], ["--per-tensor-weights"], ["--min-weight-elements", "10"], ["--group-size", "32"]):
        r = qext_cli("quantize", src, tmp_path / "x.pt", "--mode", "static", "--calib", calib, *extra)
        assert r.returncode == 1 and f"{extra[0]} applies to --mode dynamic only" in r.stderr, r.stderr
    r = qext_cli("quantize", src, tmp_path / "x.pt", "--calib", calib, "--observer", "histogram")
    assert r.returncode == 1 and "--calib, --observer apply to --mode static only" in r.stderr, r.stderr
    # the static options are used
    r = qext_cli("quantize", src, tmp_path / "h.pt", "--mode", "static", "--calib", calib, "--observer", "histogram",
                 "--histogram-method", "entropy", "--weight-bits", "6")
    assert r.returncode == 0, r.stderr
    r = qext_cli("quantize", src, tmp_path / "a7.pt", "--mode", "static", "--calib", calib, "--weight-bits", "7",
                 "--activation-bits", "7")
    assert r.returncode == 0, r.stderr
    assert qext.load(str(tmp_path / "a7.pt"))._qext_metadata["activation_bits"] == "7"
    r = qext_cli("quantize", src, tmp_path / "e.pt", "--mode", "static", "--calib", calib, "--equalize",
                 "--bias-correction")
    assert r.returncode == 0, r.stderr
    assert qext.load(str(tmp_path / "e.pt"))._qext_metadata["bias_correction"] == "true"
    r = qext_cli("quantize", src, tmp_path / "x.pt", "--equalize")
    assert r.returncode == 1 and "--equalize applies to --mode static only" in r.stderr, r.stderr
    # an output that cannot be written is refused before quantizing
    (tmp_path / "dir.pt").mkdir()
    r = qext_cli("quantize", src, tmp_path / "dir.pt", "--mode", "static", "--calib", calib)
    assert r.returncode == 1 and "is a directory" in r.stderr
    assert not (tmp_path / "x.pt").exists()


def test_cli_errors_keep_their_cause_and_reports_say_what_the_model_is(tmp_path):
    from models import LeNet

    src, calib = tmp_path / "lenet.pt", tmp_path / "calib.pt"
    torch.jit.save(torch.jit.script(LeNet().eval()), str(src))
    torch.save([torch.randn(2, 3, 20, 20)], calib)  # too small for LeNet's flatten -> fc1
    r = qext_cli("quantize", src, tmp_path / "x.pt", "--mode", "static", "--calib", calib)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "TorchScript interpreter" not in r.stderr and "shape" in r.stderr, r.stderr
    shown = qext_cli("report", src)
    assert shown.returncode == 0 and "was not quantized by qext" in shown.stdout


def test_python_m_qext_is_the_cli():
    r = subprocess.run([sys.executable, "-m", "qext", "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "kernel path:" in r.stdout


def test_cpp_example_static_mode(tmp_path):
    need_cpp_examples()
    from models import ResNet18ish, randomize_batch_norm

    torch.manual_seed(0)
    model = randomize_batch_norm(ResNet18ish())
    src, out, calib = tmp_path / "resnet.pt", tmp_path / "resnet_int8.pt", tmp_path / "calib.pt"
    torch.jit.save(torch.jit.script(model), str(src))
    torch.save([torch.randn(2, 3, 64, 64) for _ in range(3)], calib)
    result = subprocess.run(
        [CPP / "quantize_model", src, out, "--input-shape", "1,3,64,64", "--mode", "static", "--calib", calib],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "29 of 29 layers int8" in result.stdout
    # one tensor as the calibration file, as `qext quantize` reads it; the accuracy tools
    torch.save(torch.randn(6, 3, 64, 64), calib)
    one = subprocess.run(
        [CPP / "quantize_model", src, tmp_path / "one.pt", "--input-shape", "1,3,64,64", "--mode", "static", "--calib", calib,
         "--equalize", "--bias-correction"],
        capture_output=True, text=True,
    )
    assert one.returncode == 0, one.stderr
    assert qext.load(str(tmp_path / "one.pt"))._qext_metadata["bias_correction"] == "true"
    paired = subprocess.run(
        [CPP / "quantize_model", src, tmp_path / "a7.pt", "--input-shape", "1,3,64,64", "--mode", "static", "--calib", calib,
         "--weight-bits", "7", "--activation-bits", "7"],
        capture_output=True, text=True,
    )
    assert paired.returncode == 0, paired.stderr
    meta = qext.load(str(tmp_path / "a7.pt"))._qext_metadata
    assert meta["weight_bits"] == "7" and meta["activation_bits"] == "7"
    q = qext.load(out)
    assert qext.report(q).mode == "static"
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert q(x).shape == (1, 10)
    # the C++-quantized model runs in the plain LibTorch program too
    run = subprocess.run([CPP / "run_model", out, tmp_path / "y.pt", "--input-shape", "1,3,64,64"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "y.pt"), q(torch.ones(1, 3, 64, 64)))
