"""Makes the coefficients of csrc/kernels/gelu_erf.h and reports their error.

erf(u) ~= u * P(u^2) / Q(u^2) on [0, CLAMP] (Q's constant term 1), fitted by
linearised least squares (x P - erf(x) Q = 0, weighted by the previous Q)
with Lawson's reweighting toward the minimax error. Then evaluated as the
kernels do -- float32, Horner without FMA, clamps, one division -- against
erf in double.

    .venv/bin/python scripts/fit_gelu_erf.py
"""

import numpy as np
from scipy.special import erf

CLAMP = 3.925  # float erf(u) rounds to 1 beyond about 3.92
DEG_P, DEG_Q = 5, 5


def fit(deg_p, deg_q, rounds=60):
    x = np.sort(np.concatenate([np.cos(np.linspace(np.pi, 0, 6000)) * CLAMP / 2 + CLAMP / 2,
                                np.linspace(0, CLAMP, 3000)]))
    t, y = x * x, erf(x)
    weight, q_prev = np.ones_like(x), np.ones_like(x)
    for _ in range(rounds):
        a = np.hstack([x[:, None] * t[:, None] ** np.arange(deg_p + 1),
                       -y[:, None] * t[:, None] ** np.arange(1, deg_q + 1)])
        s = weight / q_prev
        sol, *_ = np.linalg.lstsq(a * s[:, None], y * s, rcond=None)
        p, q = sol[:deg_p + 1], np.concatenate([[1.0], sol[deg_p + 1:]])
        q_prev = np.polyval(q[::-1], t)
        err = np.abs(x * np.polyval(p[::-1], t) / q_prev - y)
        weight *= 1 + 0.5 * err / err.max()
    return p.astype(np.float32), q.astype(np.float32)


def gelu_f32(x, p, q):
    """gelu_erf.h's operations, in its order, in float32."""
    f = np.float32
    u = x * f(1 / np.sqrt(2))
    u = np.minimum(f(CLAMP), np.maximum(f(-CLAMP), u))
    t = u * u
    pp, qq = np.full_like(t, p[-1]), np.full_like(t, q[-1])
    for a, b in zip(p[-2::-1], q[-2::-1]):
        pp, qq = pp * t + a, qq * t + b
    e = np.minimum(f(1), np.maximum(f(-1), (u * pp) / qq))
    return (f(0.5) * x) * (f(1) + e)


def main():
    p, q = fit(DEG_P, DEG_Q)
    assert np.all(np.polyval(q[::-1].astype(np.float64), np.linspace(0, CLAMP**2, 1000)) > 0), "Q has a root"
    x = (np.arange(-2_000_000, 2_000_001) * np.float32(5e-6)).astype(np.float32)
    exact = 0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / np.sqrt(2)))
    print("kP =", ", ".join(f"{np.float32(v)!r}".replace("np.float32(", "").rstrip(")") + "f" for v in p))
    print("kQ =", ", ".join(f"{np.float32(v)!r}".replace("np.float32(", "").rstrip(")") + "f" for v in q))
    print(f"GELU max abs error over [-10, 10]: {np.abs(gelu_f32(x, p, q) - exact).max():.3g}")


if __name__ == "__main__":
    main()
