#include "ops/qmatmul.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/accumulate.h>

#include "kernels/isa.h"
#include "kernels/qgemm.h"
#include "ops/parallel_qgemm.h"

namespace qext::ops {

namespace {

bool is_int8_or_uint8(const at::Tensor& t) {
  return t.scalar_type() == at::kChar || t.scalar_type() == at::kByte;
}

// A zero point tensor as int64 [count]: one per tensor ([] or [1]) is broadcast.
at::Tensor zero_points(const char* op, const char* what, const at::Tensor& zp, int64_t count,
                       const at::Tensor& data, const char* per) {
  TORCH_CHECK(!zp.is_floating_point() && !zp.is_complex() && zp.scalar_type() != at::kBool, op, ": ",
              what, " zero point must be an integer tensor; got ", zp.scalar_type());
  TORCH_CHECK(zp.numel() == 1 || (zp.dim() == 1 && zp.size(0) == count), op, ": expected one ", what,
              " zero point or one per ", per, " (", count, "); got shape ", zp.sizes());
  const int64_t lo = data.scalar_type() == at::kByte ? 0 : -128;
  const int64_t hi = data.scalar_type() == at::kByte ? 255 : 127;
  at::Tensor z = zp.to(data.device(), at::kLong).reshape({-1});
  if (z.numel() > 0) {
    const auto [zmin, zmax] = at::aminmax(z);
    TORCH_CHECK(zmin.item<int64_t>() >= lo && zmax.item<int64_t>() <= hi, op, ": ", what,
                " zero points must lie in [", lo, ", ", hi, "] for ", data.scalar_type(), " data");
  }
  return z.numel() == count ? z : z.expand({count}).contiguous();
}

// uint8 u <-> int8 u - 128 (and back) is the sign bit flipped: one pass, exact.
at::Tensor flip_sign_bit(const at::Tensor& t, at::ScalarType to) {
  return t.contiguous().view(at::kByte).bitwise_xor(0x80).view(to);
}

}  // namespace

MatmulOperands matmul_operands(const char* op, const at::Tensor& a, const at::Tensor& a_zero_point,
                               const at::Tensor& b, const at::Tensor& b_zero_point) {
  TORCH_CHECK(is_int8_or_uint8(a) && is_int8_or_uint8(b), op, ": expected int8 or uint8 operands; got ",
              a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.dim() >= 2 && b.dim() >= 2, op, ": expected matrices ([..., M, K] and [..., K, N]); got shapes ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.device() == b.device(), op, ": operands on different devices: ", a.device(), " and ",
              b.device());
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  TORCH_CHECK(b.size(-2) == k, op, ": inner dimensions differ: a is ", a.sizes(), ", b is ", b.sizes());
  TORCH_CHECK(b.dim() == 2 || b.sizes().slice(0, b.dim() - 2) == a.sizes().slice(0, a.dim() - 2), op,
              ": b must be [K, N] or have a's batch dimensions; got a ", a.sizes(), ", b ", b.sizes());
  TORCH_CHECK(k <= kMaxExactMatmulK, op, ": K = ", k, " is longer than ", kMaxExactMatmulK,
              ", the longest reduction an int32 result always holds exactly; split K or dequantize");
  MatmulOperands o;
  o.m = m;
  o.k = k;
  o.n = n;
  // Batch counts spelled out: reshape(-1, ...) is ambiguous for empty operands.
  const int64_t batch = c10::multiply_integers(a.sizes().slice(0, a.dim() - 2));
  o.a = a.reshape({batch, m, k});
  o.b = b.reshape({b.dim() == 2 ? 1 : batch, k, n});
  o.a_zero_point = zero_points(op, "a's", a_zero_point, m, a, "row");
  o.b_zero_point = zero_points(op, "b's", b_zero_point, n, b, "column");
  o.out_sizes = a.sizes().vec();
  o.out_sizes.back() = n;
  return o;
}

at::Tensor qmatmul_int32(const at::Tensor& a, const at::Tensor& a_zero_point, const at::Tensor& b,
                         const at::Tensor& b_zero_point) {
  constexpr const char* op = "qext::qmatmul_int32";
  TORCH_CHECK(a.device().is_cpu(), op, ": the CPU implementation got ", a.device(), " tensors");
  MatmulOperands o = matmul_operands(op, a, a_zero_point, b, b_zero_point);
  const int64_t batch = o.a.size(0);
  at::Tensor out = at::zeros({batch, o.m, o.n}, a.options().dtype(at::kInt));
  if (out.numel() == 0 || o.k == 0) return out.reshape(o.out_sizes);

  // The kernels take uint8 rows and symmetric int8 columns: shift int8 rows by
  // +128 and uint8 columns by -128 (with their zero points) -- exact.
  const bool a_signed = o.a.scalar_type() == at::kChar;
  at::Tensor a_u8 = a_signed ? flip_sign_bit(o.a, at::kByte) : o.a.contiguous();
  at::Tensor za = o.a_zero_point + (a_signed ? 128 : 0);
  const bool b_unsigned = o.b.scalar_type() == at::kByte;
  at::Tensor b_s8 = b_unsigned ? flip_sign_bit(o.b, at::kChar) : o.b;
  at::Tensor zb = o.b_zero_point - (b_unsigned ? 128 : 0);

  const kernels::Isa isa = kernels::active_isa();
  // A shared b is packed once and a's batches run as one [batch * M, K] GEMM.
  const bool shared_b = o.b.size(0) == 1;
  const int64_t rows = shared_b ? batch * o.m : o.m;
  at::Tensor za_rows = (shared_b ? za.repeat({batch}) : za).to(at::kInt).contiguous();
  for (int64_t i = 0; i < (shared_b ? 1 : batch); ++i) {
    // b's columns are the kernels' weight rows: packed from [K, N] in place.
    const at::Tensor bi = b_s8[i].contiguous();
    const kernels::PackedWeights packed(bi.data_ptr<int8_t>(), o.n, o.k, /*row_stride=*/1, /*k_stride=*/o.n, isa);
    kernels::GemmArgs args;
    args.a = a_u8.data_ptr<uint8_t>() + i * o.m * o.k;
    args.lda = o.k;
    args.a_zero_point = za_rows.data_ptr<int32_t>();
    args.c = out.data_ptr<int32_t>() + i * o.m * o.n;
    args.ldc = o.n;
    parallel_qgemm(args, packed, kernels::Epilogue{}, rows);
  }
  // The kernels computed sum_k (a - za) * b; take b's zero points off:
  // - zb[n] * sum_k (a[m, k] - za[m]). In int64, then narrowed (it fits: K is bounded).
  if (at::any(zb != 0).item<bool>()) {
    at::Tensor row_sums = a_u8.to(at::kLong).sum(-1) - o.k * za.unsqueeze(0);  // [batch, M]
    out = (out.to(at::kLong) - row_sums.unsqueeze(-1) * zb).to(at::kInt);
  }
  return out.reshape(o.out_sizes);
}

at::Tensor qmatmul_int32_aten(const at::Tensor& a, const at::Tensor& a_zero_point, const at::Tensor& b,
                              const at::Tensor& b_zero_point) {
  return qmatmul_int32_aten_unchecked(matmul_operands("qext::qmatmul_int32", a, a_zero_point, b, b_zero_point));
}

at::Tensor qmatmul_int32_aten_unchecked(const MatmulOperands& o) {
  const int64_t batch = o.a.size(0);
  if (o.m == 0 || o.n == 0 || o.k == 0 || batch == 0) {
    return at::zeros(o.out_sizes, o.a.options().dtype(at::kInt));
  }
  // at::_int_mm multiplies int8 by int8: shift uint8 operands by -128 (and
  // their zero points), exact.
  auto to_s8 = [](const at::Tensor& t, at::Tensor& zp) {
    if (t.scalar_type() == at::kChar) return t;
    zp = zp - 128;
    return flip_sign_bit(t, at::kChar);
  };
  at::Tensor za = o.a_zero_point, zb = o.b_zero_point;
  const at::Tensor a8 = to_s8(o.a, za), b8 = to_s8(o.b, zb);
  // cuBLASLt's int8 GEMM wants M > 16 and M, K, N multiples of 8: zero
  // padding adds nothing to the sums.
  const auto round_up = [](int64_t v, int64_t to) { return (v + to - 1) / to * to; };
  const int64_t mp = round_up(std::max<int64_t>(o.m, 17), 8), kp = round_up(o.k, 8), np = round_up(o.n, 8);
  const at::Tensor ap = mp == o.m && kp == o.k ? a8 : at::constant_pad_nd(a8, {0, kp - o.k, 0, mp - o.m});
  const at::Tensor bp = kp == o.k && np == o.n ? b8 : at::constant_pad_nd(b8, {0, np - o.n, 0, kp - o.k});
  std::vector<at::Tensor> raw;
  raw.reserve(batch);
  for (int64_t i = 0; i < batch; ++i) {
    // b column-major ("TN"): the layout cuBLASLt's int8 kernels take for
    // every shape (row-major b is refused for some, e.g. N = 5000).
    const at::Tensor b_cols = bp[b8.size(0) == 1 ? 0 : i].t().contiguous().t();
    at::Tensor p = at::_int_mm(ap[i], b_cols);
    raw.push_back(mp == o.m && np == o.n ? p : p.narrow(0, 0, o.m).narrow(1, 0, o.n));
  }
  // sum (a - za)(b - zb) = sum ab - za (sum_k b - K zb) - zb sum_k a. In
  // int32: the terms may wrap, but the result fits (K is bounded) and
  // two's-complement wrapping is exact modulo 2^32.
  at::Tensor out = batch == 1 ? raw[0].unsqueeze(0) : at::stack(raw);
  const at::Tensor zb32 = zb.to(at::kInt);
  const at::Tensor col_terms = b8.sum(-2, /*keepdim=*/true, at::kInt) - zb32 * static_cast<int32_t>(o.k);  // [1|batch, 1, N]
  const at::Tensor row_sums = a8.sum(-1, /*keepdim=*/true, at::kInt);                                     // [batch, M, 1]
  at::Tensor correction = za.to(at::kInt).unsqueeze(-1) * col_terms;  // [1|batch, M, N]
  correction = correction.addcmul(row_sums, zb32);
  return (out - correction).reshape(o.out_sizes);
}

at::Tensor qmatmul(const at::Tensor& a, const at::Tensor& a_scale, const at::Tensor& a_zero_point,
                   const at::Tensor& b, const at::Tensor& b_scale, const at::Tensor& b_zero_point,
                   const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "qext::qmatmul";
  static const auto int32_op = c10::Dispatcher::singleton()
                                   .findSchemaOrThrow("qext::qmatmul_int32", "")
                                   .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                     const at::Tensor&)>();
  const at::Tensor acc = int32_op.call(a, a_zero_point, b, b_zero_point);
  const int64_t m = a.size(-2), n = b.size(-1);
  auto scales = [&](const at::Tensor& s, int64_t count, const char* what, const char* per) {
    TORCH_CHECK(s.scalar_type() == at::kFloat, op, ": ", what, " scale must be float32; got ", s.scalar_type());
    TORCH_CHECK(s.numel() == 1 || (s.dim() == 1 && s.size(0) == count), op, ": expected one ", what,
                " scale or one per ", per, " (", count, "); got shape ", s.sizes());
    return s.to(acc.device()).reshape({-1});
  };
  const at::Tensor sa = scales(a_scale, m, "a's", "row"), sb = scales(b_scale, n, "b's", "column");
  at::Tensor out = acc.to(at::kFloat) * (sa.unsqueeze(-1) * sb);
  if (bias && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->numel() == n, op, ": expected a float32 bias of ", n,
                " values; got ", bias->scalar_type(), " ", bias->sizes());
    out = out + bias->to(out.device()).reshape({n});
  }
  return out;
}

}  // namespace qext::ops
