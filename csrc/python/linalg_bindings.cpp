// qext._C.linalg: include/qext/linalg.h for Python (python/qext/linalg.py
// adds the docstrings and the string dtypes).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>  // at::Tensor <-> torch.Tensor

#include <sstream>

#include "qext/linalg.h"

namespace py = pybind11;
namespace ql = qext::linalg;

void bind_linalg(py::module_& parent) {
  py::module_ m = parent.def_submodule("linalg", "qext::linalg (use qext.linalg)");
  py::enum_<ql::QDtype>(m, "QDtype")
      .value("int8", ql::QDtype::Int8)
      .value("uint8", ql::QDtype::Uint8)
      .value("int4", ql::QDtype::Int4);
  py::class_<ql::QTensor>(m, "QTensor")
      .def_readonly("data", &ql::QTensor::data)
      .def_readonly("scale", &ql::QTensor::scale)
      .def_readonly("zero_point", &ql::QTensor::zero_point)
      .def_readonly("axis", &ql::QTensor::axis)
      .def_property_readonly("dtype", [](const ql::QTensor& q) { return std::string(ql::qdtype_name(q.dtype)); })
      .def_property_readonly("shape", &ql::QTensor::sizes)
      .def_property_readonly("device", [](const ql::QTensor& q) { return q.data.device(); })
      .def("dim", &ql::QTensor::dim)
      .def("int_repr", &ql::QTensor::int_repr)
      .def("dequantize", &ql::dequantize)
      .def("transpose", &ql::transpose, py::arg("dim0"), py::arg("dim1"))
      .def("t", [](const ql::QTensor& q) { return ql::transpose(q, -2, -1); })
      .def("__matmul__", [](const ql::QTensor& a, const ql::QTensor& b) { return ql::matmul(a, b); })
      .def("__add__", &ql::add)
      .def("__mul__", &ql::mul)
      .def("__repr__", [](const ql::QTensor& q) {
        std::ostringstream s;
        s << "QTensor(dtype=" << ql::qdtype_name(q.dtype) << ", shape=" << c10::IntArrayRef(q.sizes())
          << ", " << (q.axis ? "per-axis " + std::to_string(*q.axis) : std::string("per-tensor"))
          << ", device=" << q.data.device() << ")";
        return s.str();
      });
  m.def("quantize", py::overload_cast<const at::Tensor&, ql::QDtype, std::optional<int64_t>, bool>(&ql::quantize),
        py::arg("x"), py::arg("dtype"), py::arg("axis"), py::arg("symmetric"));
  m.def("quantize_with",
        py::overload_cast<const at::Tensor&, const at::Tensor&, const at::Tensor&, ql::QDtype, std::optional<int64_t>>(
            &ql::quantize),
        py::arg("x"), py::arg("scale"), py::arg("zero_point"), py::arg("dtype"), py::arg("axis"));
  m.def("dequantize", &ql::dequantize, py::arg("q"));
  m.def("matmul_int32", &ql::matmul_int32, py::arg("a"), py::arg("b"));
  m.def("matmul", &ql::matmul, py::arg("a"), py::arg("b"), py::arg("bias") = std::nullopt);
  m.def("add", &ql::add, py::arg("a"), py::arg("b"));
  m.def("mul", &ql::mul, py::arg("a"), py::arg("b"));
  m.def("transpose", &ql::transpose, py::arg("q"), py::arg("dim0"), py::arg("dim1"));
  m.def("topk_dot", &ql::topk_dot, py::arg("queries"), py::arg("keys"), py::arg("k"));
  py::class_<ql::Factorization>(m, "Factorization")
      .def_readonly("left", &ql::Factorization::left)
      .def_readonly("right", &ql::Factorization::right)
      .def_readonly("rank", &ql::Factorization::rank)
      .def_readonly("energy", &ql::Factorization::energy)
      .def_readonly("relative_error", &ql::Factorization::relative_error)
      .def_readonly("bytes", &ql::Factorization::bytes)
      .def_readonly("float_bytes", &ql::Factorization::float_bytes)
      .def("__repr__", [](const ql::Factorization& f) {
        std::ostringstream s;
        s << "Factorization(rank=" << f.rank << ", energy=" << f.energy << ", relative_error=" << f.relative_error
          << ", bytes=" << f.bytes << " of " << f.float_bytes << " float)";
        return s.str();
      });
  m.def("factorize", &ql::factorize, py::arg("matrix"), py::arg("rank"), py::arg("energy"), py::arg("dtype"));
}
