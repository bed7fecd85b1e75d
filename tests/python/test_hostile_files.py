"""Hostile model files: the pickled state of every qext class (observers of a
half-calibrated model, packed conv and linear weights) edited field by field,
by hand and at random. Loading such a file must give a clear error or a model
that runs correctly; never a crash. Files are loaded in child processes, so a
regression shows as a failed test ("killed by signal 11") instead of ending
the test run. The corpus is made here, by the tests; nothing is shipped."""

import json
import math
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import qext
from archive_edit import Archive, edit_states

HERE = Path(__file__).resolve().parent
# scripts/sanitize.sh points this at the ASan/UBSan build of run_model.
RUN_MODEL = Path(os.environ.get("QEXT_RUN_MODEL", HERE.parents[1] / "build" / "python" / "cpp_examples" / "run_model"))
INPUT_SHAPE = (2, 3, 8, 8)
# Files per class in the random test (scripts/sanitize.sh lowers it: run_model
# is slow under AddressSanitizer).
FUZZ_FILES = int(os.environ.get("QEXT_FUZZ_FILES", "40"))

# Loads each file of a folder, runs it on INPUT_SHAPE (and, for a
# half-calibrated model, calibrates and converts it), and prints one JSON line
# per file: the first line of the error, or "ok" and whether the output is finite.
LOADER = """
import json, sys, warnings
from pathlib import Path
import torch, qext
warnings.simplefilter("ignore")
torch.manual_seed(0)
x = torch.randn({shape})
for path in sorted(Path(sys.argv[1]).glob("*.pt")):
    result = {{"file": path.name}}
    try:
        m = qext.load(path)
        y = m(x)
        if hasattr(m, "_qext_static_exclude"):  # half-calibrated: finish the job
            y = qext.convert(m)(x)
        result["outcome"] = "ok"
        result["finite"] = bool(torch.isfinite(y).all())
    except Exception as e:
        text = str(e).strip()
        if "TorchScript interpreter" in text and "RuntimeError: " in text:  # the cause comes last
            text = text[text.rfind("RuntimeError: ") + len("RuntimeError: "):]
        result["outcome"] = type(e).__name__ + ": " + (text.splitlines() or [""])[0]
    print(json.dumps(result), flush=True)
""".format(shape=INPUT_SHAPE)


def small_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, stride=2),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 3 * 3, 4)).eval()


class Recurrent(torch.nn.Module):
    """[2, 3, 8, 8] read as 2 steps of 3 sequences of 64 features."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(64, 16, num_layers=2, bidirectional=True)
        self.gru = torch.nn.GRU(32, 8)

    def forward(self, x):
        y, _ = self.lstm(x.flatten(2))
        return self.gru(y)[0]


class Lookup(torch.nn.Module):
    """[2, 3, 8, 8] floats made into indices of a 20-row table."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 6)

    def forward(self, x):
        return self.emb((x.abs() * 5).long().clamp(0, 19))


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """One file per qext class: half-calibrated models (histogram and min/max
    observers), a static int8 model, dynamic int8 models (Linear, LSTM/GRU)."""
    folder = tmp_path_factory.mktemp("originals")
    data = [torch.randn(*INPUT_SHAPE) for _ in range(2)]
    files = {}
    for observer in ("histogram", "min_max"):
        prepared = qext.prepare_static(small_cnn(), qext.StaticConfig(observer=observer))
        qext.calibrate(prepared, data)
        files[observer] = folder / f"prepared_{observer}.pt"
        qext.save(prepared, files[observer])
    files["static"] = folder / "static.pt"
    qext.save(qext.quantize_static(small_cnn(), data), files["static"])
    files["dynamic"] = folder / "dynamic.pt"
    qext.save(qext.quantize_dynamic(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()),
              files["dynamic"])
    files["rnn"] = folder / "rnn.pt"
    torch.manual_seed(0)
    qext.save(qext.quantize_dynamic(Recurrent().eval()), files["rnn"])
    files["lowbit"] = folder / "lowbit.pt"
    qext.save(qext.quantize_dynamic(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval(),
                                    qext.DynamicConfig(weight_bits=4, group_size=32)), files["lowbit"])
    files["embedding"] = folder / "embedding.pt"
    qext.save(qext.quantize_dynamic(Lookup().eval()), files["embedding"])
    return files


def load_all(folder: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", LOADER, str(folder)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"loader died (signal {-result.returncode}):\n{result.stderr[-3000:]}"
    return {row["file"]: row for row in map(json.loads, result.stdout.splitlines())}


def set_field(index, value):
    def edit(state, archive):
        state[index] = value(archive) if callable(value) else value
    return edit


# Edits that made the loaded model write out of bounds, read through an empty
# vector or compute with nonsense geometry, each with the error it must give.
TARGETED = {
    # Observer state: (version, kind, method, percentile, averaging, bins, axis,
    # qmin, qmax, symmetric, batches, min, max, hist, hist_lo, hist_hi)
    "histogram_bins_mismatch": ("histogram", "Observer", set_field(5, 4096), "histogram has 2048 bins"),
    "histogram_short": ("histogram", "Observer", set_field(13, lambda a: a.tensor(torch.ones(10, dtype=torch.float64))), "bins"),
    "histogram_negative_count": ("histogram", "Observer", set_field(13, lambda a: a.tensor(-torch.ones(2048, dtype=torch.float64))), "finite and >= 0"),
    "histogram_nan_range": ("histogram", "Observer", set_field(14, math.nan), "histogram range"),
    "minmax_sizes_differ": ("min_max", "Observer", set_field(11, lambda a: a.tensor(torch.zeros(2))), "channels"),
    "minmax_empty": ("min_max", "Observer", lambda s, a: (set_field(11, a.tensor(torch.zeros(0)))(s, a), set_field(12, a.tensor(torch.zeros(0)))(s, a)), "no min/max"),
    "minmax_nan": ("min_max", "Observer", set_field(11, lambda a: a.tensor(torch.tensor([math.nan]))), "finite"),
    "minmax_inverted": ("min_max", "Observer", set_field(11, lambda a: a.tensor(torch.tensor([1e9]))), "min <= max"),
    "observer_negative_batches": ("min_max", "Observer", set_field(10, -5), "negative batch count"),
    "observer_bad_kind": ("min_max", "Observer", set_field(1, "bogus"), "kind must be"),
    "observer_bad_qrange": ("min_max", "Observer", set_field(8, 100000), "qmax"),
    "observer_version": ("histogram", "Observer", set_field(0, 99), "format version"),
    # PackedConvWeight: (version, weight, scales, stride, padding, dilation, groups)
    "conv_zero_stride": ("static", "PackedConvWeight", set_field(3, lambda a: a.int_list([0, 0])), "stride must be in"),
    "conv_huge_padding": ("static", "PackedConvWeight", set_field(4, lambda a: a.int_list([2**62, 2**62])), "padding must be in"),
    "conv_huge_dilation": ("static", "PackedConvWeight", set_field(5, lambda a: a.int_list([2**40, 1])), "dilation must be in"),
    "conv_three_strides": ("static", "PackedConvWeight", set_field(3, lambda a: a.int_list([1, 1, 1])), "1 or 2 values"),
    "conv_groups": ("static", "PackedConvWeight", set_field(6, 5), "groups"),
    "conv_float_weight": ("static", "PackedConvWeight", set_field(1, lambda a: a.tensor(torch.zeros(8, 3, 3, 3))), "int8 weight"),
    "conv_scales_count": ("static", "PackedConvWeight", set_field(2, lambda a: a.tensor(torch.ones(3))), "scales"),
    "conv_version": ("static", "PackedConvWeight", set_field(0, 7), "format version"),
    # PackedLinearWeight: (version, weight, scales)
    "linear_1d_weight": ("dynamic", "PackedLinearWeight", set_field(1, lambda a: a.tensor(torch.zeros(5, dtype=torch.int8))), "2-D"),
    "linear_empty_weight": ("dynamic", "PackedLinearWeight", set_field(1, lambda a: a.tensor(torch.zeros(0, 192, dtype=torch.int8))), "empty"),
    "linear_nan_scale": ("dynamic", "PackedLinearWeight", set_field(2, lambda a: a.tensor(torch.full((4,), math.nan))), "finite and > 0"),
    # LowBitLinearWeight: (version, bits, group_size, in_features, codes, scales)
    "lowbit_bits": ("lowbit", "LowBitLinearWeight", set_field(1, 3), "bits must be 4, 2 or 1"),
    "lowbit_zero_bits": ("lowbit", "LowBitLinearWeight", set_field(1, 0), "bits must be 4, 2 or 1"),
    "lowbit_group": ("lowbit", "LowBitLinearWeight", set_field(2, 6), "group_size must be a multiple of 4"),
    "lowbit_in_features": ("lowbit", "LowBitLinearWeight", set_field(3, 2**40), "codes do not fit"),
    "lowbit_codes_dtype": ("lowbit", "LowBitLinearWeight", set_field(4, lambda a: a.tensor(torch.zeros(4, 96))), "codes do not fit"),
    "lowbit_scales_shape": ("lowbit", "LowBitLinearWeight", set_field(5, lambda a: a.tensor(torch.ones(4, 1))), "scales [4, 6]"),
    "lowbit_nan_scale": ("lowbit", "LowBitLinearWeight", set_field(5, lambda a: a.tensor(torch.full((4, 6), math.nan))), "finite"),
    "lowbit_version": ("lowbit", "LowBitLinearWeight", set_field(0, 9), "format version"),
    # PackedRnnWeight: (version, mode, layers, bidirectional, weights, scales, biases)
    "rnn_mode": ("rnn", "PackedRnnWeight", set_field(1, "rnn_tanh"), "mode must be"),
    "rnn_layers": ("rnn", "PackedRnnWeight", set_field(2, 2**40), "num_layers must be"),
    "rnn_direction": ("rnn", "PackedRnnWeight", set_field(3, False), "weights (w_ih, w_hh per layer and direction)"),
    "rnn_weights_missing": ("rnn", "PackedRnnWeight", set_field(4, lambda a: a.tensor_list([a.tensor(torch.zeros(4, 4, dtype=torch.int8))])), "weights but"),
    # PackedEmbedding: (version, int8 table, scales)
    "table_float": ("embedding", "PackedEmbedding", set_field(1, lambda a: a.tensor(torch.zeros(20, 6))), "int8 table"),
    "table_scales_count": ("embedding", "PackedEmbedding", set_field(2, lambda a: a.tensor(torch.ones(3))), "scales [20]"),
    "table_zero_scale": ("embedding", "PackedEmbedding", set_field(2, lambda a: a.tensor(torch.zeros(20))), "finite and > 0"),
    "table_short": ("embedding", "PackedEmbedding", lambda s, a: (set_field(1, a.tensor(torch.zeros(4, 6, dtype=torch.int8)))(s, a), set_field(2, a.tensor(torch.ones(4)))(s, a)), "out of range"),
    "rnn_bias_shape": ("rnn", "PackedRnnWeight", lambda s, a: set_field(6, a.tensor_list([a.tensor(torch.ones(3))] * len(s[6].args[0])))(s, a), "each bias"),
}


def test_targeted_edits_give_clear_errors(originals, tmp_path):
    for name, (source, class_name, edit, _) in TARGETED.items():
        assert edit_states(originals[source], tmp_path / f"{name}.pt", class_name, edit) >= 1, name
    results = load_all(tmp_path)
    for name, (_, _, _, expected) in TARGETED.items():
        outcome = results[f"{name}.pt"]["outcome"]
        assert outcome != "ok" and expected in outcome, f"{name}: {outcome}"


def test_unedited_round_trip_loads_and_runs(originals, tmp_path):
    """The editing machinery itself changes nothing: a copy loads and runs."""
    for name, path in originals.items():
        edit_states(path, tmp_path / f"{name}.pt", "Observer" if "prepared" in path.name else "Packed", lambda s, a: None)
    results = load_all(tmp_path)
    assert all(r["outcome"] == "ok" and r["finite"] for r in results.values()), results


def random_value(rng: random.Random, old, archive: Archive):
    """A value of the old one's kind (mostly) or of another kind."""
    ints = [-1, 0, 1, 2, 3, 7, 255, 256, 2**31, -2**31, 2**62]
    floats = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-45, 3e38]
    tensors = [torch.zeros(0), torch.full((3,), math.nan), torch.ones(2048, dtype=torch.float64),
               torch.zeros(4, 2, dtype=torch.int8), torch.randint(-127, 127, (8, 3, 3, 3), dtype=torch.int8),
               torch.randint(-127, 127, (4, 192), dtype=torch.int8), torch.ones(8), torch.ones(1), torch.ones(7, dtype=torch.int32)]
    pools = {
        int: lambda: rng.choice(ints), float: lambda: rng.choice(floats), str: lambda: rng.choice(["", "bogus", "min_max", "histogram", "entropy", "mse"]),
        bool: lambda: rng.choice([True, False]), type(None): lambda: rng.choice([None, 0, -1, 3]),
        "tensor": lambda: archive.tensor(rng.choice(tensors)),
        "int_list": lambda: archive.int_list(rng.choice([[], [0], [1, 2, 3], [2**62, 1], [-1, -1], [1, 1], [2, 2], [0, 0]])),
        "tensor_list": lambda: archive.tensor_list([archive.tensor(rng.choice(tensors)) for _ in range(rng.choice([0, 1, 2, 4, 8]))]),
    }
    kind = type(old)
    if type(old).__name__ == "_rebuild_tensor_v2":
        kind = "tensor"
    elif type(old).__name__ == "build_intlist":
        kind = "int_list"
    elif type(old).__name__ == "build_tensorlist":
        kind = "tensor_list"
    if rng.random() < 0.15:
        kind = rng.choice(list(pools))
    return pools[kind]()


@pytest.mark.parametrize("source,class_name", [("histogram", "Observer"), ("min_max", "Observer"),
                                               ("static", "PackedConvWeight"), ("static", "PackedLinearWeight"),
                                               ("dynamic", "PackedLinearWeight"), ("rnn", "PackedRnnWeight"),
                                               ("embedding", "PackedEmbedding"), ("lowbit", "LowBitLinearWeight")])
def test_random_field_edits_never_crash(originals, tmp_path, source, class_name):
    rng = random.Random(f"{source}-{class_name}")
    for i in range(FUZZ_FILES):
        def edit(state, archive):
            for _ in range(rng.choice([1, 1, 2])):
                field = rng.randrange(len(state))
                state[field] = random_value(rng, state[field], archive)
        edit_states(originals[source], tmp_path / f"fuzz_{i:02d}.pt", class_name, edit)
    results = load_all(tmp_path)  # asserts the loader was not killed
    assert len(results) == FUZZ_FILES
    # A model that loads and runs on finite input gives a finite output.
    assert all(r["finite"] for r in results.values() if r["outcome"] == "ok"), results
    if RUN_MODEL.exists():  # the plain LibTorch program survives them too
        for path in sorted(tmp_path.glob("fuzz_*.pt")):
            run = subprocess.run([RUN_MODEL, path, tmp_path / "out.bin", "--input-shape", ",".join(map(str, INPUT_SHAPE))],
                                 capture_output=True, text=True, timeout=120)
            assert run.returncode in (0, 1), f"run_model on {path.name}: signal {-run.returncode}\n{run.stderr[-2000:]}"
            if run.returncode == 1:
                assert run.stderr.startswith("run_model: error: ") and len(run.stderr.strip()) > len("run_model: error:")


def test_run_model_names_the_error_of_a_bad_input_file(originals, tmp_path):
    if not RUN_MODEL.exists():
        pytest.skip("C++ examples not built; run scripts/setup.sh")
    junk = tmp_path / "input.pt"
    junk.write_bytes(b"PK\x03\x04 not really a pickle")
    run = subprocess.run([RUN_MODEL, originals["static"], tmp_path / "y.pt", "--input-shape", "2,3,8,8", "--input", junk],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    message = run.stderr.strip()
    assert message.startswith("run_model: error: ") and len(message) > len("run_model: error: ") + 5, message
    assert not (tmp_path / "y.pt").exists()


def test_report_of_a_foreign_attribute_is_a_clear_error(tmp_path):
    class Foreign(torch.nn.Module):
        def __init__(self, rows):
            super().__init__()
            self._qext_report = rows

        def forward(self, x):
            return x

    cases = {
        "string": "not a report",
        "list_of_5_tuples": [("a", "b", "c", "d", 1)],
        "wrong_types": [("a", "b", "c", "d", "e", "f")],
    }
    cases["string"] = "hello"
    for name, rows in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.jit.save(torch.jit.script(Foreign(rows)), str(path))
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import qext
            try:
                qext.report(qext.load({str(path)!r}))
                print("accepted")
            except ValueError as e:
                print("ValueError:", e)
            """)], capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, f"{name}: signal {-child.returncode}\n{child.stderr[-2000:]}"
        assert "is not a qext report" in child.stdout and "INTERNAL ASSERT" not in child.stdout, (name, child.stdout)
