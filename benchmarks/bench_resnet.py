"""Static int8 quantization of a CNN, every contender in one run: fp32 eager,
fp32 TorchScript (frozen), torch.ao static in eager mode (ResNet only) and in
FX mode (x86 backend), ONNX Runtime quantize_static (QDQ, per-channel, U8S8;
optional) and qext (8-bit weights, and 7-bit ones: the weights AVX2 CPUs
without VNNI multiply with vpmaddubsw; and 7-bit weights with 7-bit
activations, torch.ao x86's reduce_range, where AVX2 also sums two k groups
per widening).

    python benchmarks/bench_resnet.py [--model resnet18|mobilenet_v2|regnet_x_400mf|mobilenet_v3_large|efficientnet_b0|convnext_tiny]
        [--threads 1,2] [--shapes 1x224,16x64]
        [--weight-bits 8,7] [--no-paired]

The networks are the layouts of ResNet-18, MobileNetV2, RegNetX-400MF
(tests/python/models.py), MobileNetV3-Large, EfficientNet-B0 and ConvNeXt-T
(tests/python/models_mobile.py) with random weights and non-trivial BatchNorm
(and ConvNeXt's LayerNorm and layer-scale) statistics; error columns compare
outputs with fp32 eager (cosine per row). Latency: median of repeated runs,
taken in rounds that cycle through the contenders so the machine's noise hits
all alike.

An AVX2-only machine, emulated on an AVX-512 one (qext, fp32 and torch.ao's
fbgemm limited; ONNX Runtime's MLAS reads CPUID and cannot be, so its column
stays an AVX-512 figure):

    QEXT_ISA=avx2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_resnet.py --model mobilenet_v2
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import warnings

import torch

import qext
from common import add_ratios_and_print, interleaved_median_seconds, quiet_peers, threads, write_json

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from models import MobileNetV2ish, RegNetXish, ResNet18ish, randomize_batch_norm  # noqa: E402
from models_mobile import ConvNeXtTish, EfficientNetB0ish, MobileNetV3Largeish, randomize_convnext  # noqa: E402

from ao_eager_resnet import quantize_eager  # noqa: E402

warnings.filterwarnings("ignore")


def torch_ao_fx(model, example, calib):
    with quiet_peers():
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (example,))
        with torch.no_grad():
            for x in calib:
                prepared(x)
        return convert_fx(prepared)


def onnxruntime_static(model, example, calib, nthreads, tmp):
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        return None
    fp32_path, int8_path = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "m_int8.onnx")
    if not os.path.exists(int8_path):
        with quiet_peers():
            torch.onnx.export(model, (example,), fp32_path, input_names=["x"], dynamo=False, opset_version=17,
                              dynamic_axes={"x": {0: "n"}})

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter([{"x": x.numpy()} for x in calib])

            def get_next(self):
                return next(self.items, None)

        with quiet_peers():
            quantize_static(fp32_path, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = nthreads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(int8_path, opts, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])


def cosine(ref, out):
    c = torch.nn.functional.cosine_similarity(ref.flatten(1), out.flatten(1))
    return c.mean().item(), c.min().item()


MODELS = {
    "resnet18": lambda: ResNet18ish(width=64, classes=1000),
    "mobilenet_v2": lambda: MobileNetV2ish(classes=1000),
    "regnet_x_400mf": lambda: RegNetXish(classes=1000),
    "mobilenet_v3_large": lambda: MobileNetV3Largeish(classes=1000),
    "efficientnet_b0": lambda: EfficientNetB0ish(classes=1000),
    "convnext_tiny": lambda: randomize_convnext(ConvNeXtTish(classes=1000)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18", choices=sorted(MODELS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--shapes", default="1x224,16x64", help="BATCHxSIZE,...")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds per contender, over all rounds")
    ap.add_argument("--rounds", type=int, default=5, help="turns through the contenders (noise hits all alike)")
    ap.add_argument("--weight-bits", default="8,7", help="qext weight precisions to compare (StaticConfig.weight_bits)")
    ap.add_argument("--paired", action=argparse.BooleanOptionalAction, default=True,
                    help="also qext with 7-bit weights and activations (StaticConfig.activation_bits=7, torch.ao x86's "
                         "reduce_range)")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/MODEL.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    resnet = args.model == "resnet18"
    model = randomize_batch_norm(MODELS[args.model]())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "fp32.pt")
        torch.jit.save(torch.jit.script(model), float_path)
        for shape in args.shapes.split(","):
            batch, size = (int(v) for v in shape.split("x"))
            g = torch.Generator().manual_seed(1)
            calib = [torch.randn(batch, 3, size, size, generator=g) for _ in range(8)]
            x = torch.randn(batch, 3, size, size, generator=g)
            with torch.no_grad():
                ref = model(x)
                frozen = torch.jit.freeze(torch.jit.script(model).eval())
                ao = torch_ao_fx(model, x, calib)
                ao_eager = quantize_eager(model, calib) if resnet else None
                qext_models = {}
                for bits in (int(b) for b in args.weight_bits.split(",")):
                    qext_models["qext_static" + ("" if bits == 8 else f"_w{bits}")] = qext.quantize_static(
                        model, calib, qext.StaticConfig(weight_bits=bits))
                if args.paired:  # 7-bit activations too: AVX2's two k groups per widening
                    qext_models["qext_static_w7a7"] = qext.quantize_static(
                        model, calib, qext.StaticConfig(weight_bits=7, activation_bits=7))
                q = next(iter(qext_models.values()))
                int8_path = os.path.join(tmp, "int8.pt")
                qext.save(q, int8_path)
                sizes = {"fp32": os.path.getsize(float_path), "qext_int8": os.path.getsize(int8_path)}
                ort_dir = os.path.join(tmp, shape)
                os.makedirs(ort_dir, exist_ok=True)
                for nthreads in [int(t) for t in args.threads.split(",")]:
                    with threads(nthreads):
                        contenders = {
                            "fp32_eager": model, "fp32_torchscript_frozen": frozen,
                            "torch_ao_eager_x86": ao_eager, "torch_ao_fx_x86": ao,
                            "onnxruntime_qdq": onnxruntime_static(model, x, calib, nthreads, ort_dir), **qext_models,
                        }
                        contenders = {name: fn for name, fn in contenders.items() if fn is not None}
                        with quiet_peers():
                            outs = {name: fn(x) for name, fn in contenders.items()}
                            times = interleaved_median_seconds(
                                {name: functools.partial(fn, x) for name, fn in contenders.items()},
                                rounds=args.rounds, min_time=args.min_time)
                        for name in contenders:
                            cm, cmin = cosine(ref, outs[name])
                            rows.append({"shape": shape, "threads": nthreads, "contender": name, "seconds": times[name],
                                         "cos_mean": cm, "cos_min": cmin})
                        add_ratios_and_print(rows[-len(times):], times, f"{shape:7}")
                print(f"model file: fp32 {sizes['fp32']:,} bytes, qext int8 {sizes['qext_int8']:,} bytes "
                      f"({sizes['fp32'] / sizes['qext_int8']:.2f}x smaller)")
    limits = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY") if k in os.environ}
    write_json(args.out or f"benchmarks/results/{args.model}.json",
               {"model": args.model, "isa": qext.active_isa(), "fp32_isa_limits": limits, "file_bytes": sizes, "rows": rows})


if __name__ == "__main__":
    main()
