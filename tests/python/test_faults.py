"""Bad input and faults: shapes that do not fit, out-of-range quantization
parameters, huge layers, concurrent saves and calibration, full disks, killed
writers, leaks across repeated calls. Each gives a clear error or a correct
result; cases that once crashed the process run in a child process."""

import errno
import gc
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

import qext

HERE = Path(__file__).resolve().parent


def run_child(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout, cwd=HERE)
    assert result.returncode >= 0, f"child killed by signal {-result.returncode}:\n{result.stderr[-3000:]}"
    return result


# --- shapes -------------------------------------------------------------------

def test_static_conv_rejects_an_input_smaller_than_its_window():
    """Conv2d(3, 8, 5, stride=2) on 4x4: float PyTorch raises; the output size
    uses floor division, not truncation (it once gave a 1x1 output and, with
    64 channels, read past the image)."""
    for channels in (3, 64):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(channels, 8, 5, stride=2)).eval()
        q = qext.quantize_static(model, [torch.randn(1, channels, 16, 16)])
        x = torch.randn(1, channels, 4, 4)
        with pytest.raises(RuntimeError):
            model(x)
        with pytest.raises(RuntimeError, match="smaller than the kernel"):
            q(x)


def test_pooling_rejects_empty_images_and_sums_without_overflow():
    empty = torch.zeros(1, 4, 0, 5, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="non-empty C, H and W"):
        torch.ops.qext.avg_pool2d_int8(empty, 0, [3], [1], [1], False, False, None)
    with pytest.raises(RuntimeError, match="non-empty"):
        torch.ops.qext.max_pool2d_int8(empty, [3], [1], [1], [1], False)
    # A 3000x3000 global average of 200s: int32 sums of 255 * 9e6 would wrap.
    x = torch.full((1, 2, 3000, 3000), 200, dtype=torch.uint8)
    x[0, 1] = 3
    pooled = torch.ops.qext.avg_pool2d_int8(x, 0, [3000], [3000], [0], False, True, None)
    assert pooled.flatten().tolist() == [200, 3]
    adaptive = torch.ops.qext.adaptive_avg_pool2d_int8(x, 0, [1])
    assert adaptive.flatten().tolist() == [200, 3]
    with pytest.raises(RuntimeError, match="too large"):
        torch.ops.qext.adaptive_avg_pool2d_int8(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 0, [2**40, 1])


def test_window_arithmetic_from_arguments_does_not_overflow():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(OverflowError, match="overflows"):
        torch.ops.qext.max_pool2d_int8(x, [2**62], [1], [0], [2**40], False)


# --- quantization parameters --------------------------------------------------

@pytest.mark.parametrize("zero_point", [2**40, -(2**31), 256, -1, math.inf])
def test_out_of_range_zero_points_are_refused(zero_point):
    x = torch.randn(10)
    scale = torch.tensor(0.1)
    zp = torch.tensor(zero_point, dtype=torch.float32 if isinstance(zero_point, float) else torch.int64)
    with pytest.raises(RuntimeError, match="zero_point must lie in"):
        torch.ops.qext.quantize(x, scale, zp, None, 0, 255)
    with pytest.raises(RuntimeError, match="zero_point must lie in"):
        torch.ops.qext.fake_quantize(x, scale, zp, None, 0, 255)
    with pytest.raises(RuntimeError, match="zero_point must lie in"):
        torch.ops.qext.dequantize(torch.zeros(10, dtype=torch.uint8), scale, zp, None)


def test_int8_zero_points_follow_the_signed_range():
    q = torch.tensor([-128, 0, 127], dtype=torch.int8)
    assert torch.ops.qext.dequantize(q, torch.tensor(1.0), torch.tensor(-128), None).tolist() == [0.0, 128.0, 255.0]
    with pytest.raises(RuntimeError, match=r"\[-128, 127\]"):
        torch.ops.qext.dequantize(q, torch.tensor(1.0), torch.tensor(128), None)


def test_choose_qparams_never_returns_an_infinite_scale():
    x = torch.tensor([-3e38, 3e38])
    with pytest.raises(ValueError, match="too wide"):
        torch.ops.qext.choose_qparams(x, None, 0, 255, False)
    with pytest.raises(ValueError, match="too wide"):
        torch.ops.qext.choose_qparams(x, None, 0, 1, True)
    scale, _ = torch.ops.qext.choose_qparams(torch.tensor([-1e38, 1e38]), None, 0, 255, False)
    assert math.isfinite(scale.item())


def test_entropy_calibration_on_constant_data():
    for value in (5.0, -2.0, 0.0):
        obs = torch.classes.qext.Observer("histogram", "entropy", 99.99, 0.01, 2048, None, 0, 255, False)
        obs.observe(torch.full((1000,), value))
        lo, hi = obs.min_max()
        assert lo.item() <= hi.item()
        scale, zp = obs.calculate_qparams()
        assert math.isfinite(scale.item()) and scale.item() > 0 and 0 <= zp.item() <= 255


# --- layers too long for the int32 accumulator --------------------------------

def test_a_linear_longer_than_the_accumulator_stays_float_with_a_reason():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(70000, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)).eval()
    x = torch.randn(2, 70000)
    for q in (qext.quantize_dynamic(model), qext.quantize_static(model, [x])):
        rows = {r.name: r for r in qext.report(q).layers}
        assert rows["0"].status == "float" and "65536" in rows["0"].reason, rows["0"]
        assert rows["2"].status == "int8"
        with torch.no_grad():
            ref, got = model(x), q(x)
        assert torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0) > 0.99


# --- NaN / Inf ----------------------------------------------------------------

def test_static_models_refuse_non_finite_input_unless_told_otherwise():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    data = [torch.randn(1, 3, 8, 8)]
    x = torch.randn(1, 3, 8, 8)
    x[0, 0, 0, 0] = math.nan
    checked = qext.quantize_static(model, data)
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        checked(x)
    clamped = qext.quantize_static(model, data, qext.StaticConfig(check_finite=False))
    assert torch.isfinite(clamped(x)).all()
    # the dynamic path lets NaN through, as float does
    dynamic = qext.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 2)).eval())
    assert torch.isnan(dynamic(torch.tensor([[math.nan, 0.0, 0.0, 0.0]]))).all()


# --- saving -------------------------------------------------------------------

def model_pair():
    torch.manual_seed(0)
    a = qext.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(256, 256)).eval())
    b = qext.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.Linear(128, 64)).eval())
    return a, b


def temporaries(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if "qext-tmp" in p.name]


def test_concurrent_saves_to_one_path_leave_a_whole_file(tmp_path):
    a, b = model_pair()
    x = torch.randn(3, 256)
    expected = {tuple(a(x).shape), tuple(b(x).shape)}
    target = tmp_path / "model.pt"
    errors = []

    def save_many(model):
        try:
            for _ in range(15):
                qext.save(model, target)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=save_many, args=(m,)) for m in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert tuple(qext.load(target)(x).shape) in expected
    assert temporaries(tmp_path) == []


def test_save_never_follows_a_planted_symlink(tmp_path):
    a, _ = model_pair()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # The names an attacker could guess (the old scheme used the pid).
    for name in (f".model.pt.qext-tmp-{os.getpid()}", ".model.pt.qext-tmp", f".model.pt.qext-tmp-{os.getpid()}-0"):
        (tmp_path / name).symlink_to(victim)
    qext.save(a, tmp_path / "model.pt")
    assert victim.read_text() == "precious"
    qext.load(tmp_path / "model.pt")


def test_save_errors_carry_their_errno_and_leave_nothing(tmp_path):
    a, _ = model_pair()
    with pytest.raises(FileNotFoundError):
        qext.save(a, tmp_path / "missing" / "model.pt")
    with pytest.raises(IsADirectoryError):
        qext.save(a, tmp_path)
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: cannot make a folder unwritable")
        with pytest.raises(PermissionError):
            qext.save(a, tmp_path / "model.pt")
    finally:
        os.chmod(tmp_path, 0o700)


def test_a_full_disk_raises_oserror_and_keeps_the_old_file(tmp_path):
    """The file-size limit makes write() fail like a full disk (EFBIG instead
    of ENOSPC, same path through the code): OSError, not an abort; the old
    file intact; no temporary left."""
    a, b = model_pair()
    target = tmp_path / "model.pt"
    qext.save(b, target)
    before = target.read_bytes()
    code = f"""
        import errno, resource, signal, torch, qext
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        torch.manual_seed(0)
        m = qext.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(1024, 1024)).eval())
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            qext.save(m, {str(target)!r})
            print("saved")
        except OSError as e:
            print("OSError", e.errno == errno.EFBIG, e)
    """
    result = run_child(code)
    assert result.stdout.startswith("OSError True"), result.stdout + result.stderr
    assert target.read_bytes() == before
    assert temporaries(tmp_path) == []


def test_a_killed_writer_leaves_no_temporary_file(tmp_path):
    code = f"""
        import torch, qext
        torch.manual_seed(0)
        m = qext.quantize_dynamic(torch.nn.Sequential(*[torch.nn.Linear(2048, 2048) for _ in range(4)]).eval())
        print("ready", flush=True)
        while True:
            qext.save(m, {str(tmp_path / "model.pt")!r})
    """
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # several saves in, very likely in the middle of one
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert temporaries(tmp_path) == []
    qext.load(tmp_path / "model.pt")  # the last completed save is whole


# --- concurrency --------------------------------------------------------------

def test_calibrating_one_prepared_model_from_several_threads():
    """Observers are locked: concurrent calibration neither corrupts the heap
    nor loses a batch, and min/max ranges equal a sequential run's."""
    code = """
        import threading, torch, qext
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                    torch.nn.Linear(16 * 14 * 14, 10)).eval()
        batches = [torch.randn(4, 3, 16, 16) for _ in range(24)]
        for observer in ("min_max", "histogram"):
            shared = qext.prepare_static(model, qext.StaticConfig(observer=observer))
            def work(part):
                for b in part:
                    qext.calibrate(shared, [b])
            threads = [threading.Thread(target=work, args=(batches[i::4],)) for i in range(4)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            sequential = qext.prepare_static(model, qext.StaticConfig(observer=observer))
            qext.calibrate(sequential, batches)
            def counts(m):
                return [getattr(m, f"_qext_observer_{i}").batches() for i in range(64) if hasattr(m, f"_qext_observer_{i}")]
            assert len(counts(shared)) >= 3 and counts(shared) == counts(sequential), (counts(shared), counts(sequential))
            if observer == "min_max":  # order-independent ranges: the same model
                x = torch.randn(2, 3, 16, 16)
                assert torch.equal(qext.convert(shared)(x), qext.convert(sequential)(x))
        print("ok")
    """
    result = run_child(code)
    assert result.stdout.strip().endswith("ok"), result.stderr[-3000:]


# --- memory -------------------------------------------------------------------

def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read the resident size")
def test_repeated_quantization_does_not_grow_memory():
    """Every call once left its graphs in the global compilation unit (about
    1.5 MB per quantize_static, 40 KB per quantize_dynamic)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3),
                                torch.nn.Flatten(), torch.nn.Linear(16 * 12 * 12, 10)).eval()
    scripted = torch.jit.script(model)
    data = [torch.randn(2, 3, 16, 16)]
    for quantize in (lambda: qext.quantize_static(scripted, data), lambda: qext.quantize_dynamic(scripted)):
        for _ in range(10):  # warm up allocator pools
            quantize()
        gc.collect()
        before = resident_mb()
        for _ in range(60):
            quantize()
        gc.collect()
        grown = resident_mb() - before
        assert grown < 15, f"{grown:.1f} MB kept after 60 calls"


def test_gemm_workspace_returns_after_a_large_call():
    """The AVX2 path widens activations per block of rows; a 16384 x 4096 call
    once left a 128 MB buffer alive in the calling thread."""
    if "avx2" not in qext.supported_isas():
        pytest.skip("this CPU has no AVX2")
    code = """
        import gc, os, torch, qext
        qext.set_isa("avx2")
        torch.set_num_threads(1)
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        packed = torch.ops.qext.quantize_linear_weight(torch.randn(8, 4096), True, 127)
        x = torch.randn(16384, 4096)
        torch.ops.qext.linear_dynamic(x[:4], packed, None, True, False)
        gc.collect()
        before = rss()
        y = torch.ops.qext.linear_dynamic(x, packed, None, True, False)
        del y
        gc.collect()
        print(round(rss() - before, 1))
    """
    grown = float(run_child(code).stdout.strip())
    assert grown < 32, f"{grown} MB kept after the call"
