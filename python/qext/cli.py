"""The ``qext`` command line.

    qext quantize IN.pt OUT.pt --mode dynamic [--exclude PATTERN ...] [--per-tensor-activations]
                                              [--weight-bits 4 --group-size 128] [--low-rank 64 | --low-rank-energy 0.9]
                                              [--weight-bits 7 --activation-bits 7]
    qext quantize IN.pt OUT.pt --mode static --calib CALIB.pt [--observer histogram [--histogram-method entropy]]
                                             [--equalize] [--bias-correction] [--weight-bits 4 | --weight-bits 7 --activation-bits 7]
    qext report MODEL.pt
    qext bench MODEL.pt --input-shape 1,3,224,224 [--threads 1,2] [--quantized Q.pt | --weight-bits 4] [--plot OUT.svg]
    qext info
"""

from __future__ import annotations

import argparse
import os
import sys

import torch


# Options that only one mode reads: given with the other, they would be
# silently ignored.
_DYNAMIC_ONLY = {"include": "--include", "per_row_activations": "--per-row-activations",
                 "per_tensor_activations": "--per-tensor-activations", "per_tensor_weights": "--per-tensor-weights",
                 "min_weight_elements": "--min-weight-elements", "group_size": "--group-size",
                 "low_rank": "--low-rank", "low_rank_energy": "--low-rank-energy"}
_STATIC_ONLY = {"calib": "--calib", "observer": "--observer", "histogram_method": "--histogram-method",
                "equalize": "--equalize", "bias_correction": "--bias-correction"}


def _check_mode_options(args: argparse.Namespace) -> None:
    other = _DYNAMIC_ONLY if args.mode == "static" else _STATIC_ONLY
    given = [flag for dest, flag in other.items() if getattr(args, dest) not in (None, False, [])]
    if given:
        raise ValueError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to "
                         f"--mode {'dynamic' if args.mode == 'static' else 'static'} only")


def _check_output_writable(path: str) -> None:
    """Before the long part: OUT's folder must exist and be writable (qext.save
    writes a temporary file there and renames it)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"OUT {path!r} is a directory")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of OUT does not exist: {folder!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to the folder of OUT: {folder!r}")


def _quantize(args: argparse.Namespace) -> int:
    import qext

    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise ValueError("OUT must differ from IN: qext never overwrites the float model")
    _check_mode_options(args)
    _check_output_writable(args.output)
    model = qext.load(args.input)
    if args.mode == "static":
        if not args.calib:
            raise ValueError("--mode static needs --calib CALIB.pt (a torch.save'd list of input tensors or tuples)")
        config = qext.StaticConfig(exclude=args.exclude or [], observer=args.observer or "min_max",
                                   histogram_method=args.histogram_method or "percentile",
                                   weight_bits=8 if args.weight_bits is None else args.weight_bits,
                                   activation_bits=8 if args.activation_bits is None else args.activation_bits,
                                   equalize=args.equalize, bias_correction=args.bias_correction)
        quantized = qext.quantize_static(model, load_calibration(args.calib), config)
    else:
        config = qext.DynamicConfig(
            include=args.include or [],
            exclude=args.exclude or [],
            weight_granularity="per_tensor" if args.per_tensor_weights else "per_channel",
            per_row_activations=not args.per_tensor_activations,
            min_weight_elements=args.min_weight_elements or 0,
            weight_bits=8 if args.weight_bits is None else args.weight_bits,
            activation_bits=8 if args.activation_bits is None else args.activation_bits,
            group_size=128 if args.group_size is None else args.group_size,
            low_rank=args.low_rank or 0,
            low_rank_energy=args.low_rank_energy or 0.0,
        )
        quantized = qext.quantize_dynamic(model, config)
    print(qext.report(quantized))
    qext.save(quantized, args.output)
    print(f"saved {args.output} ({os.path.getsize(args.output):,} bytes; input {os.path.getsize(args.input):,} bytes)")
    return 0


def load_calibration(path: str) -> list:
    """A calibration file: ``torch.save(list_of_inputs, path)``, each input a
    tensor or a tuple of tensors (one batch each); a single tensor is split into
    batches of 32 along its first dimension."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such calibration file: {path!r}")
    try:
        data = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(f"{path!r} is not a torch.save'd list of tensors: {str(e).splitlines()[0]}") from None
    if isinstance(data, torch.Tensor):
        return list(data.split(32))
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"{path!r} holds a {type(data).__name__}; expected a list of tensors (or tuples of tensors)")
    return list(data)


def _report(args: argparse.Namespace) -> int:
    import qext

    print(qext.report(qext.load(args.model)))
    return 0


def _parse_shape(text: str) -> list[int]:
    try:
        shape = [int(d) for d in text.split(",")]
    except ValueError:
        shape = []
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"bad --input-shape {text!r}: expected comma-separated positive sizes like 1,3,224,224")
    return shape


def _bench(args: argparse.Namespace) -> int:
    import qext

    threads = []
    for t in args.threads.split(","):
        if not t.strip().isdigit() or int(t) < 1:
            raise ValueError(f"bad --threads {args.threads!r}: expected comma-separated counts like 1,2")
        threads.append(int(t))
    shapes = [_parse_shape(s) for s in args.input_shape]
    for out in (args.json, args.plot):
        if out:
            _check_output_writable(out)
    model = qext.load(args.model)
    if args.quantized:
        quantized = qext.load(args.quantized)
    elif args.mode == "static":
        if not args.calib:
            raise ValueError("--mode static needs --calib CALIB.pt (or give --quantized Q.pt)")
        quantized = qext.quantize_static(model, load_calibration(args.calib))
    else:
        quantized = qext.quantize_dynamic(model, qext.DynamicConfig(
            weight_bits=8 if args.weight_bits is None else args.weight_bits,
            group_size=128 if args.group_size is None else args.group_size))
    result = qext.benchmark(model, quantized, shapes=shapes, threads=threads, min_time=args.min_time,
                            progress=not args.no_progress)
    print(result)
    for out, text in ((args.json, result.to_json), (args.plot, result.to_svg)):
        if out:
            _write_atomically(out, text())
            print(f"wrote {out}")
    return 0


def _write_atomically(path: str, text: str) -> None:
    """A temporary file in the target's folder, renamed over it: never a partial file."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, path)


def _info(args: argparse.Namespace) -> int:
    import qext

    print(f"qext {qext.__version__}, torch {torch.__version__}")
    print(f"kernel path: {qext.active_isa()} (this CPU supports: {', '.join(qext.supported_isas())}; "
          "QEXT_ISA=ref|avx2|avx512_vnni|amx forces one)")
    for family, kernel in qext.kernels_in_use().items():
        print(f"  {family:12} {kernel}")
    if qext.active_isa() == "avx2":
        print("hint: AVX2 without VNNI: quantize with --weight-bits 7 --activation-bits 7 (StaticConfig / "
              "DynamicConfig / QatConfig: weight_bits=7, activation_bits=7) for the fastest exact kernels; "
              "dynamic models with --activation-bits 7 alone (8-bit weights, torch.ao's x86 recipe) take the "
              "byte kernel too; other 8-bit weights take the int16 ones")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qext", description="int8 quantization of TorchScript models for CPUs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    q = sub.add_parser("quantize", help="quantize a TorchScript model file", description="Quantize IN.pt to int8 and save OUT.pt.")
    q.add_argument("input", metavar="IN.pt")
    q.add_argument("output", metavar="OUT.pt")
    q.add_argument("--mode", choices=["dynamic", "static"], default="dynamic",
                   help="dynamic: int8 weights, activations quantized on the fly; static: int8 activations from calibration")
    q.add_argument("--calib", metavar="CALIB.pt", help="static: torch.save'd list of input tensors (or tuples), one batch each")
    q.add_argument("--observer", choices=["min_max", "moving_average", "histogram"],
                   help="static: how calibration picks activation ranges (default min_max)")
    q.add_argument("--histogram-method", choices=["percentile", "entropy", "mse"],
                   help="static, --observer histogram: the range rule (default percentile)")
    q.add_argument("--equalize", action="store_true",
                   help="static: cross-layer equalization of conv/linear pairs joined by ReLU (depthwise nets)")
    q.add_argument("--bias-correction", action="store_true",
                   help="static: correct each conv/linear bias for the mean shift of its quantized weights")
    q.add_argument("--weight-bits", type=int, metavar="B",
                   help="weight precision (default 8): static 2..8 (stored as int8); dynamic 8, 7 (stored as int8), "
                        "or 4, 2, 1 packed at that many bits with group-wise scales. On AVX2 CPUs without VNNI, "
                        "7 (or fewer, stored as int8) takes an exact byte kernel: about 1.3x faster on Intel cores, "
                        "on AMD Zen only with --activation-bits 7 too")
    q.add_argument("--activation-bits", type=int, metavar="B",
                   help="activation precision, 8 (default) or 7 (torch.ao's x86 reduce_range); 7 with "
                        "--weight-bits 7 runs about 1.15-1.3x faster again on AVX2 CPUs without VNNI; dynamic, "
                        "with 8-bit weights: the byte kernel instead of the int16 one there")
    q.add_argument("--group-size", type=int, metavar="G",
                   help="dynamic, --weight-bits < 8: inputs per weight scale, a multiple of 4 (default 128; 0: per row)")
    q.add_argument("--low-rank", type=int, metavar="R",
                   help="dynamic: each Linear as two int8 layers of rank R (truncated SVD) where that is smaller")
    q.add_argument("--low-rank-energy", type=float, metavar="E",
                   help="dynamic: like --low-rank, the smallest rank per layer keeping E of the squared singular values")
    q.add_argument("--include", action="append", metavar="PATTERN",
                   help="dynamic: quantize only layers matching (wildcards; repeatable)")
    q.add_argument("--exclude", action="append", metavar="PATTERN", help="keep layers matching in float (wildcards; repeatable)")
    q.add_argument("--per-row-activations", action="store_true",
                   help="dynamic: one activation scale per row/token (the default)")
    q.add_argument("--per-tensor-activations", action="store_true", help="dynamic: one activation scale per call")
    q.add_argument("--per-tensor-weights", action="store_true",
                   help="dynamic: one weight scale per layer instead of per output channel")
    q.add_argument("--min-weight-elements", type=int, metavar="N", help="dynamic: keep layers with fewer weights in float")
    q.set_defaults(run=_quantize)

    r = sub.add_parser("report", help="print the report stored in a qext model")
    r.add_argument("model", metavar="MODEL.pt")
    r.set_defaults(run=_report)

    b = sub.add_parser("bench", help="inference time of a float model and its quantized copy",
                       description="Latency (median, contenders alternating) of MODEL.pt and its quantized copy per "
                                   "input shape and thread count, as a table; the inputs are float32 randn tensors.")
    b.add_argument("model", metavar="MODEL.pt", help="the float TorchScript model")
    b.add_argument("--input-shape", action="append", required=True, metavar="1,3,224,224",
                   help="an input shape (repeatable)")
    b.add_argument("--threads", default="1", metavar="1,2", help="torch thread counts (default 1)")
    b.add_argument("--quantized", metavar="Q.pt", help="compare with this quantized model instead of quantizing MODEL")
    b.add_argument("--mode", choices=["dynamic", "static"], default="dynamic", help="how to quantize MODEL (default dynamic)")
    b.add_argument("--calib", metavar="CALIB.pt", help="static: calibration batches")
    b.add_argument("--weight-bits", type=int, metavar="B", help="dynamic: 8 (default), 7, 4, 2 or 1")
    b.add_argument("--group-size", type=int, metavar="G", help="dynamic, --weight-bits < 8: inputs per weight scale")
    b.add_argument("--min-time", type=float, default=1.0, metavar="S", help="seconds per model, shape and thread count")
    b.add_argument("--json", metavar="OUT.json", help="also write the figures as JSON")
    b.add_argument("--plot", metavar="OUT.svg", help="also draw them as an SVG bar chart")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    b.set_defaults(run=_bench)

    i = sub.add_parser("info", help="qext version and the CPU's kernel paths")
    i.set_defaults(run=_info)
    return parser


def _summary(e: Exception) -> str:
    """One line that says what went wrong. A TorchScript interpreter error
    starts with its traceback and ends with the cause (a shape mismatch...)."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    cause = text.rfind("RuntimeError: ")
    if "TorchScript interpreter" in text and cause >= 0:
        text = text[cause + len("RuntimeError: "):].strip()
    return text.splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "per_row_activations", False) and getattr(args, "per_tensor_activations", False):
        print("qext: error: --per-row-activations and --per-tensor-activations exclude each other", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, RuntimeError) as e:  # FileNotFoundError is an OSError
        print(f"qext: error: {_summary(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
