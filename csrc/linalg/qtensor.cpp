// qext::linalg (include/qext/linalg.h): quantized tensors over the qext ops.
// Everything goes through the dispatcher so each device gets its own
// implementation of the same op.
#include "qext/linalg.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <stdexcept>

namespace qext::linalg {

namespace {

// A qext op by name, typed once.
template <typename Signature>
c10::TypedOperatorHandle<Signature> qext_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

using OptAxis = std::optional<int64_t>;

std::pair<int64_t, int64_t> qrange(QDtype dtype) {
  switch (dtype) {
    case QDtype::Uint8: return {0, 255};
    case QDtype::Int8: return {-128, 127};
    case QDtype::Int4: return {-8, 7};
  }
  throw std::invalid_argument("qext::linalg: unknown QDtype");
}

OptAxis checked_axis(const char* fn, const at::Tensor& x, OptAxis axis) {
  if (!axis) return axis;
  const int64_t ax = *axis < 0 ? *axis + x.dim() : *axis;
  TORCH_CHECK(ax >= 0 && ax < x.dim(), fn, ": axis ", *axis, " is out of range for a ", x.dim(), "-d tensor");
  return ax;
}

QTensor from_int_values(const at::Tensor& values, at::Tensor scale, at::Tensor zero_point, QDtype dtype,
                        OptAxis axis) {
  QTensor q;
  q.scale = std::move(scale);
  q.zero_point = std::move(zero_point);
  q.axis = axis;
  q.dtype = dtype;
  if (dtype == QDtype::Int4) {
    TORCH_CHECK(values.dim() >= 1, "qext::linalg: int4 tensors need at least one dimension");
    static const auto pack = qext_op<at::Tensor(const at::Tensor&)>("qext::pack_int4");
    q.int4_last_dim = values.size(-1);
    q.data = pack.call(values);
  } else {
    q.data = values;
  }
  return q;
}

// The zero point / scale of a matmul operand, refusing an axis along K.
void check_matmul_axis(const char* fn, const QTensor& q, int64_t allowed_from_end, const char* what) {
  if (!q.axis) return;
  const int64_t from_end = *q.axis - q.dim();
  TORCH_CHECK(from_end == allowed_from_end, fn, ": ", what, " is quantized along dimension ", *q.axis,
              "; matmul takes per-tensor parameters or ", allowed_from_end == -2 ? "per-row (axis -2)"
                                                                                 : "per-column (axis -1)",
              " ones (a scale along the reduced dimension cannot be factored out of the sum)");
}

}  // namespace

const char* qdtype_name(QDtype dtype) {
  switch (dtype) {
    case QDtype::Int8: return "int8";
    case QDtype::Uint8: return "uint8";
    case QDtype::Int4: return "int4";
  }
  return "?";
}

QDtype qdtype_from_name(const std::string& name) {
  if (name == "int8") return QDtype::Int8;
  if (name == "uint8") return QDtype::Uint8;
  if (name == "int4") return QDtype::Int4;
  throw std::invalid_argument("qext::linalg: unknown quantized dtype '" + name + "'; expected int8, uint8 or int4");
}

std::vector<int64_t> QTensor::sizes() const {
  std::vector<int64_t> s = data.sizes().vec();
  if (dtype == QDtype::Int4 && !s.empty()) s.back() = int4_last_dim;
  return s;
}

at::Tensor QTensor::int_repr() const {
  if (dtype != QDtype::Int4) return data;
  static const auto unpack = qext_op<at::Tensor(const at::Tensor&, int64_t)>("qext::unpack_int4");
  return unpack.call(data, int4_last_dim);
}

QTensor quantize(const at::Tensor& x, QDtype dtype, OptAxis axis, bool symmetric) {
  static const auto choose = qext_op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, OptAxis, int64_t,
                                                                        int64_t, bool)>("qext::choose_qparams");
  const OptAxis ax = checked_axis("qext::linalg::quantize", x, axis);
  const auto [lo, hi] = qrange(dtype);
  auto [scale, zero_point] = choose.call(x, ax, lo, hi, symmetric);
  return quantize(x, scale, zero_point, dtype, ax);
}

QTensor quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, QDtype dtype,
                 OptAxis axis) {
  static const auto quant = qext_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, OptAxis,
                                               int64_t, int64_t)>("qext::quantize");
  const OptAxis ax = checked_axis("qext::linalg::quantize", x, axis);
  const auto [lo, hi] = qrange(dtype);
  at::Tensor values = quant.call(x, scale, zero_point, ax, lo, hi);
  return from_int_values(values, scale, zero_point.to(at::kInt), dtype, ax);
}

at::Tensor dequantize(const QTensor& q) {
  static const auto deq = qext_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, OptAxis)>(
      "qext::dequantize");
  return deq.call(q.int_repr(), q.scale, q.zero_point, q.axis);
}

at::Tensor matmul_int32(const QTensor& a, const QTensor& b) {
  static const auto op = qext_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&)>("qext::qmatmul_int32");
  check_matmul_axis("qext::linalg::matmul", a, -2, "a");
  check_matmul_axis("qext::linalg::matmul", b, -1, "b");
  return op.call(a.int_repr(), a.zero_point, b.int_repr(), b.zero_point);
}

at::Tensor matmul(const QTensor& a, const QTensor& b, const std::optional<at::Tensor>& bias) {
  static const auto op = qext_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                            const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                            const std::optional<at::Tensor>&)>("qext::qmatmul");
  check_matmul_axis("qext::linalg::matmul", a, -2, "a");
  check_matmul_axis("qext::linalg::matmul", b, -1, "b");
  return op.call(a.int_repr(), a.scale, a.zero_point, b.int_repr(), b.scale, b.zero_point, bias);
}

at::Tensor add(const QTensor& a, const QTensor& b) { return dequantize(a) + dequantize(b); }

at::Tensor mul(const QTensor& a, const QTensor& b) { return dequantize(a) * dequantize(b); }

QTensor transpose(const QTensor& q, int64_t dim0, int64_t dim1) {
  const int64_t d = q.dim();
  const int64_t d0 = dim0 < 0 ? dim0 + d : dim0, d1 = dim1 < 0 ? dim1 + d : dim1;
  TORCH_CHECK(d0 >= 0 && d0 < d && d1 >= 0 && d1 < d, "qext::linalg::transpose: dimensions (", dim0, ", ", dim1,
              ") out of range for a ", d, "-d tensor");
  OptAxis axis = q.axis;
  if (axis && *axis == d0) axis = d1;
  else if (axis && *axis == d1) axis = d0;
  const at::Tensor values = q.int_repr().transpose(d0, d1).contiguous();
  return from_int_values(values, q.scale, q.zero_point, q.dtype, axis);
}

std::tuple<at::Tensor, at::Tensor> topk_dot(const QTensor& queries, const QTensor& keys, int64_t k) {
  constexpr const char* fn = "qext::linalg::topk_dot";
  TORCH_CHECK(queries.dim() == 2 && keys.dim() == 2, fn, ": expected queries [Q, D] and keys [N, D]; got ",
              queries.sizes(), " and ", keys.sizes());
  const int64_t n = keys.sizes()[0];
  TORCH_CHECK(k >= 0 && k <= n, fn, ": k = ", k, " must lie in [0, ", n, "] (the number of keys)");
  const at::Tensor scores = matmul(queries, transpose(keys, 0, 1));
  auto [values, indices] = at::topk(scores, k, /*dim=*/-1, /*largest=*/true, /*sorted=*/true);
  return {values, indices};
}

}  // namespace qext::linalg
