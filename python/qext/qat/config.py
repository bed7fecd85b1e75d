"""Options of quantization-aware training."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class QatConfig:
    """How :func:`qext.qat.prepare` simulates quantization while training.

    Activations are simulated as asymmetric uint8 per tensor, weights as
    symmetric per output channel: exactly what static convert produces.

    Attributes:
        weight_bits: weight precision, 2..8; convert packs weights the same way
            (``StaticConfig.weight_bits``).
        activation_bits: 8 (default) or 7: each activation range maps onto
            [0, 255] or [0, 127] (``StaticConfig.activation_bits``; values past
            the range keep uint8's headroom in training as in the int8 model).
            7 with ``weight_bits=7`` takes AVX2's fastest kernels.
        averaging_constant: weight of each training batch in the moving
            average of an activation's min/max (the observer).
        learnable_ranges: after the observers freeze, train each activation's
            scale and zero point with LSQ gradients instead of keeping them.
        freeze_observers_after: training steps after which activation ranges
            stop following the data (None: until :func:`freeze_observers`).
        freeze_batch_norm_after: training steps after which BatchNorm uses its
            running statistics (None: until :func:`freeze_batch_norm`).
    """

    weight_bits: int = 8
    activation_bits: int = 8
    averaging_constant: float = 0.01
    learnable_ranges: bool = False
    freeze_observers_after: int | None = None
    freeze_batch_norm_after: int | None = None

    def validate(self) -> None:
        if isinstance(self.weight_bits, bool) or not isinstance(self.weight_bits, int) or not 2 <= self.weight_bits <= 8:
            raise ValueError(f"QatConfig.weight_bits must be an integer in [2, 8]; got {self.weight_bits!r}")
        if isinstance(self.activation_bits, bool) or self.activation_bits not in (8, 7):
            raise ValueError(f"QatConfig.activation_bits must be 8 or 7; got {self.activation_bits!r}")
        if not 0 < self.averaging_constant <= 1:
            raise ValueError(f"QatConfig.averaging_constant must be in (0, 1]; got {self.averaging_constant!r}")
        for name in ("freeze_observers_after", "freeze_batch_norm_after"):
            steps = getattr(self, name)
            if steps is not None and (not isinstance(steps, int) or steps < 0):
                raise ValueError(f"QatConfig.{name} must be None or a step count >= 0; got {steps!r}")
