"""qext.benchmark and `qext bench` (issue 14): both models timed per shape
and thread count, outputs compared, a table and JSON; bad arguments refused.
Speed itself is never asserted (benchmarks/ measures it)."""

import json
import xml.etree.ElementTree as ET
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import qext
from models import Block

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits_mlp.pt"


def test_benchmark_measures_both_models_per_shape_and_thread_count():
    torch.manual_seed(0)
    model = Block(32, 64).eval()
    result = qext.benchmark(model, shapes=[[4, 32], [16, 32]], threads=[1, 2], min_time=0.05, progress=False)
    assert [(r.shape, r.threads) for r in result.rows] == [([4, 32], 1), ([16, 32], 1), ([4, 32], 2), ([16, 32], 2)]
    assert all(r.float_ms > 0 and r.quantized_ms > 0 and r.speedup > 0 for r in result.rows)
    # int8 against float on the timed input: close, not equal.
    assert all(0 < r.max_abs_error < 0.5 for r in result.rows)
    assert result.kernel_path == qext.active_isa()
    assert result.quantized_bytes < result.float_bytes
    table = result.table()
    assert "speedup" in table and "4x32" in table and "16x32" in table and "smaller" in table
    payload = json.loads(result.to_json())
    assert len(payload["rows"]) == 4 and payload["rows"][0]["speedup"] == result.rows[0].speedup
    assert torch.get_num_threads() >= 1


def test_benchmark_takes_a_given_quantized_model_and_inputs():
    torch.manual_seed(0)
    model = Block(32, 64).eval()
    low = qext.quantize_dynamic(model, qext.DynamicConfig(weight_bits=4, group_size=32))
    result = qext.benchmark(model, low, inputs=[(torch.randn(3, 32),)], min_time=0.05, progress=False)
    assert len(result.rows) == 1 and result.rows[0].shape == [3, 32]
    with pytest.raises(ValueError, match="exactly one of shapes= or inputs="):
        qext.benchmark(model, low, min_time=0.05)
    with pytest.raises(ValueError, match="positive ints"):
        qext.benchmark(model, low, shapes=[[0, 32]])
    with pytest.raises(ValueError, match="threads"):
        qext.benchmark(model, low, shapes=[[1, 32]], threads=[0])


def test_cli_bench_prints_a_table_and_writes_json(tmp_path):
    out, svg = tmp_path / "bench.json", tmp_path / "bench.svg"
    r = subprocess.run([sys.executable, "-m", "qext", "bench", str(EXAMPLE), "--input-shape", "1,64", "--input-shape",
                        "8,64", "--threads", "1,2", "--min-time", "0.05", "--json", str(out), "--plot", str(svg)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "quantized ms" in r.stdout and "1x64" in r.stdout and "8x64" in r.stdout
    assert "4/4" in r.stderr  # the progress bar reached the end
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 4
    # The plot: one float and one quantized bar per row, lengths on one scale.
    chart = ET.parse(svg).getroot()
    bars = [e for e in chart.iter("{http://www.w3.org/2000/svg}rect") if e.get("class")]
    assert [b.get("class") for b in bars] == ["float", "quantized"] * 4
    widths = [float(b.get("width")) for b in bars]
    times = [ms for row in rows for ms in (row["float_ms"], row["quantized_ms"])]
    longest = max(times)
    for w, ms in zip(widths, times):
        assert abs(w - max(1.0, 360 * ms / longest)) < 0.06
    assert f"{rows[0]['speedup']:.2f}x" in svg.read_text()
    r = subprocess.run([sys.executable, "-m", "qext", "bench", str(EXAMPLE), "--input-shape", "1,x"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "bad --input-shape" in r.stderr
    r = subprocess.run([sys.executable, "-m", "qext", "bench", str(EXAMPLE), "--input-shape", "1,64", "--mode", "static"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "needs --calib" in r.stderr
