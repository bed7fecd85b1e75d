"""Configuration dataclasses, mirroring the C++ structs in include/qext/qext.h."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeVar, Union

from . import _C

# The option enums are the C++ ones (include/qext/qext.h), bound by pybind11.
# Configs take a member (qext.Observer.histogram) or its name ("histogram").
Granularity = _C.Granularity
Observer = _C.Observer
HistogramMethod = _C.HistogramMethod

_E = TypeVar("_E")


def enum_option(owner: str, name: str, value: object, enum: type[_E]) -> _E:
    """``value`` as a member of the bound C++ ``enum``: a member, or its name."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str) and value in enum.__members__:
        return enum.__members__[value]
    raise ValueError(f"{owner}.{name} must be a qext.{enum.__name__} or one of {sorted(enum.__members__)}; "
                     f"got {value!r}")


@dataclass
class DynamicConfig:
    """Options of :func:`qext.quantize_dynamic`.

    Attributes:
        include: qualified layer names to quantize, as shell wildcards
            (``"encoder.*"``); empty means every layer.
        exclude: layer names to keep in float (wildcards), e.g. ``["classifier"]``.
        module_types: class names of the modules owning the weights (e.g.
            ``["Linear"]``, ``["LSTM", "GRU"]``); empty means any module.
        weight_granularity: ``"per_channel"`` (one scale per output channel, the
            default) or ``"per_tensor"`` (or the :class:`qext.Granularity`
            member of that name).
        per_row_activations: one activation scale per row/token (default, more
            accurate with outlier tokens) instead of one per call.
        min_weight_elements: layers with fewer weights stay float.
        quantize_matmul: also rewrite ``x @ W`` (+ bias) with a constant 2-D ``W``.
        quantize_embeddings: embedding tables become weight-only int8 (per row);
            an output Linear tied to a table (GPT-2's lm_head) shares its values.
        weight_bits: weight precision: 8 (int8); 7 (int8 storage, values in
            [-63, 63]: AVX2 CPUs without VNNI multiply these with an exact
            ``vpmaddubsw`` kernel, about 1.3x faster, for one bit of weight
            precision; the results are the same on every CPU); or 4, 2, 1
            (binary) with one scale per group of ``group_size`` inputs, packed
            in the saved file at that many bits per weight and unpacked in
            registers by qext's low-bit kernels (activations stay uint8 per
            row, as with int8). LSTM / GRU weights take 8 or 7.
        activation_bits: activation precision of the int8 Linear / matmul
            layers: 8 (uint8 in [0, 255], default) or 7 ([0, 127], torch.ao's
            x86 ``reduce_range``). With ``weight_bits=7`` too, AVX2 CPUs
            without VNNI sum two k groups in int16 before widening: exact, and
            about 1.15x faster again than 7-bit weights alone, for one bit of
            activation precision (see docs/numerics.md). LSTM / GRU and
            low-bit layers keep 8-bit activations.
        group_size: inputs per weight scale for ``weight_bits`` <= 4: a multiple
            of 4 (32, 64, 128 are usual); 0 means one group per output row.
        low_rank: > 0 replaces each Linear ``W [N, K]`` by two int8 Linear
            layers ``K -> r -> N`` from its truncated SVD (``r = low_rank``;
            see :func:`qext.linalg.factorize`); a layer stays plain int8 unless
            the pair is at most half its size. Needs ``weight_bits`` 8 or 7, per
            channel. Trained layers often keep their accuracy at ranks far below
            what their energy suggests: try ranks and measure.
        low_rank_energy: instead of ``low_rank``, the smallest rank per layer
            keeping this share (in ``(0, 1]``) of the squared singular values.
    """

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    module_types: list[str] = field(default_factory=list)
    weight_granularity: Union[Granularity, Literal["per_channel", "per_tensor"]] = "per_channel"
    per_row_activations: bool = True
    min_weight_elements: int = 0
    quantize_matmul: bool = True
    quantize_embeddings: bool = True
    weight_bits: int = 8
    activation_bits: int = 8
    group_size: int = 128
    low_rank: int = 0
    low_rank_energy: float = 0.0

    def _to_cpp(self) -> "_C.DynamicConfig":
        for name in ("include", "exclude", "module_types"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"DynamicConfig.{name} must be a list of strings; got {value!r}")
        if not isinstance(self.min_weight_elements, int) or self.min_weight_elements < 0:
            raise ValueError(f"DynamicConfig.min_weight_elements must be an int >= 0; got {self.min_weight_elements!r}")
        if isinstance(self.weight_bits, bool) or self.weight_bits not in (8, 7, 4, 2, 1):
            raise ValueError(f"DynamicConfig.weight_bits must be 8, 7, 4, 2 or 1; got {self.weight_bits!r}")
        if isinstance(self.activation_bits, bool) or self.activation_bits not in (8, 7):
            raise ValueError(f"DynamicConfig.activation_bits must be 8 or 7; got {self.activation_bits!r}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 0 \
                or self.group_size % 4:
            raise ValueError(f"DynamicConfig.group_size must be a multiple of 4 (or 0 for one group per row); "
                             f"got {self.group_size!r}")
        if isinstance(self.low_rank, bool) or not isinstance(self.low_rank, int) or self.low_rank < 0:
            raise ValueError(f"DynamicConfig.low_rank must be an int >= 0; got {self.low_rank!r}")
        if not isinstance(self.low_rank_energy, (int, float)) or not 0.0 <= self.low_rank_energy <= 1.0:
            raise ValueError(f"DynamicConfig.low_rank_energy must be in (0, 1] (0: off); got {self.low_rank_energy!r}")
        cfg = _C.DynamicConfig()
        cfg.include = list(self.include)
        cfg.exclude = list(self.exclude)
        cfg.module_types = list(self.module_types)
        cfg.weight_granularity = enum_option("DynamicConfig", "weight_granularity", self.weight_granularity, Granularity)
        cfg.per_row_activations = bool(self.per_row_activations)
        cfg.min_weight_elements = self.min_weight_elements
        cfg.quantize_matmul = bool(self.quantize_matmul)
        cfg.quantize_embeddings = bool(self.quantize_embeddings)
        cfg.weight_bits = self.weight_bits
        cfg.activation_bits = self.activation_bits
        cfg.group_size = self.group_size
        cfg.low_rank = self.low_rank
        cfg.low_rank_energy = float(self.low_rank_energy)
        return cfg
