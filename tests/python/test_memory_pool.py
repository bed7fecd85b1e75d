"""The memory pool of qext's ops (csrc/ops/memory_pool.h): freed output blocks
are handed out again, large ones are not kept, QEXT_POOL_MB bounds what is
held, and a loaded model runs forward after forward without page faults."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

import qext

HERE = Path(__file__).resolve().parent


def run_child(code: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=300, cwd=HERE, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def add(a: torch.Tensor) -> torch.Tensor:
    return qext.add_int8(a, 0.1, 3, a, 0.1, 3, 0.2, 5)


def bytes_of(numel: int) -> torch.Tensor:
    return torch.randint(0, 256, (numel,), dtype=torch.uint8)


def test_a_freed_output_block_serves_the_next_output_of_its_size():
    a = bytes_of(300_000)
    first = add(a)
    ptr, expected = first.data_ptr(), first.clone()
    del first
    assert qext.memory_pool_bytes() >= 300_000
    second = add(a)
    assert second.data_ptr() == ptr
    assert torch.equal(second, expected)
    # a slightly smaller tensor falls in the same size class (steps of 1/8)
    del second
    assert add(bytes_of(299_000)).data_ptr() == ptr


def test_small_and_huge_tensors_are_not_kept():
    qext.release_memory_pool()
    del_small = add(bytes_of(1000))
    del del_small
    assert qext.memory_pool_bytes() == 0
    huge = add(bytes_of(40 << 20))  # over the 32 MB a pooled block may have
    del huge
    assert qext.memory_pool_bytes() == 0


def test_release_returns_every_free_block():
    outs = [add(bytes_of(200_000 + 50_000 * i)) for i in range(4)]
    del outs
    assert qext.memory_pool_bytes() >= 4 * 200_000
    qext.release_memory_pool()
    assert qext.memory_pool_bytes() == 0


def test_pool_limit_comes_from_the_environment():
    code = """
        import torch, qext
        a = torch.randint(0, 256, (300_000,), dtype=torch.uint8)
        del_me = qext.add_int8(a, 0.1, 3, a, 0.1, 3, 0.2, 5)
        del del_me
        print(qext.memory_pool_bytes())
    """
    assert run_child(code, {"QEXT_POOL_MB": "0"}).strip() == "0"
    assert int(run_child(code, {"QEXT_POOL_MB": "1"})) > 0
    # A full pool makes room for the block freed last: sizes used lately stay.
    code = """
        import torch, qext
        def add(n):
            a = torch.randint(0, 256, (n,), dtype=torch.uint8)
            return qext.add_int8(a, 0.1, 3, a, 0.1, 3, 0.2, 5)
        old = add(700_000)
        del old
        held_old = qext.memory_pool_bytes()
        new = add(400_000)
        ptr = new.data_ptr()
        del new
        print(held_old, qext.memory_pool_bytes(), add(400_000).data_ptr() == ptr)
    """
    held_old, held_new, reused = run_child(code, {"QEXT_POOL_MB": "1"}).split()
    assert int(held_old) >= 700_000 and 400_000 <= int(held_new) < 700_000 and reused == "True"
    for bad in ("lots", "-1", "1.5"):
        result = subprocess.run([sys.executable, "-c", "import qext"], capture_output=True, text=True,
                                env={**os.environ, "QEXT_POOL_MB": bad})
        assert result.returncode != 0 and f"QEXT_POOL_MB={bad} is not a number of megabytes" in result.stderr


def test_a_forked_child_can_allocate_while_the_parent_pools():
    code = """
        import os, threading, torch, qext
        a = torch.randint(0, 256, (300_000,), dtype=torch.uint8)
        stop = False
        def churn():
            while not stop:
                qext.add_int8(a, 0.1, 3, a, 0.1, 3, 0.2, 5)
        t = threading.Thread(target=churn)
        t.start()
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                torch.set_num_threads(1)
                qext.add_int8(a, 0.1, 3, a, 0.1, 3, 0.2, 5)
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
        stop = True
        t.join()
        print("ok")
    """
    assert run_child(code).strip() == "ok"


def faults_per_forward(path, input_shape, env: dict | None = None) -> float:
    """Page faults per forward of the model saved at `path`, loaded in a fresh
    process (the deployment case) and warmed up with three forwards first."""
    code = f"""
        import resource, torch, qext
        torch.set_num_threads(1)
        m = qext.load({str(path)!r})
        x = torch.randn({tuple(input_shape)!r})
        with torch.no_grad():
            for _ in range(3):
                m(x)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(5):
                m(x)
            print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
    """
    return float(run_child(code, env))


def test_a_loaded_model_runs_without_page_faults(tmp_path):
    """A fresh process that loads an int8 model (deployment) used to take
    ~650 page faults per MobileNetV2 forward: glibc handed its large blocks
    back to the system between forwards."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, 2, 1), torch.nn.ReLU6(),
        torch.nn.Conv2d(32, 96, 1), torch.nn.ReLU6(),
        torch.nn.Conv2d(96, 96, 3, 2, 1, groups=96), torch.nn.ReLU6(),
        torch.nn.Conv2d(96, 24, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(24, 10)).eval()
    calib = [torch.randn(1, 3, 224, 224) for _ in range(2)]
    path = tmp_path / "model_int8.pt"
    qext.save(qext.quantize_static(model, calib), str(path))
    faults = faults_per_forward(path, (1, 3, 224, 224))
    # Each forward writes ~2 MB of activations (~500 pages).
    assert faults < 20, f"{faults} page faults per forward"

