// qext._C: the C++ API exposed to Python, nothing more. Importing it loads
// libqext, which registers the qext ops and classes with the dispatcher.
// Modules cross as torch._C.ScriptModule (torch::jit::Module), which torch's
// own bindings register with the pybind11 bundled in torch (so this module is
// built with torch's pybind11 headers, not PyPI's).
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/utils/pybind.h>  // at::Tensor <-> torch.Tensor

#include <system_error>

#include "qext/qext.h"

namespace py = pybind11;

void bind_linalg(py::module_& m);  // linalg_bindings.cpp

namespace {

// Model inputs as the C++ API takes them: one list of arguments per batch.
std::vector<std::vector<c10::IValue>> as_inputs(const std::vector<std::vector<at::Tensor>>& batches) {
  std::vector<std::vector<c10::IValue>> inputs;
  for (const auto& batch : batches) inputs.emplace_back(batch.begin(), batch.end());
  return inputs;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "qext native bindings (use the qext package, not this module)";
  // I/O failures carry their errno to Python: OSError(errno, message), which
  // Python turns into FileNotFoundError, PermissionError... as usual. qext's
  // checks and the errors of a model run inside a call (calibration, SQNR)
  // become ValueError with the reason only, not the interpreter's traceback.
  // Local: tried before the global translators other extensions registered.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::system_error& e) {
      const py::object error = py::module_::import("builtins").attr("OSError")(e.code().value(), e.what());
      PyErr_SetObject(PyExc_OSError, error.ptr());
    } catch (const c10::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, qext::error_summary(e).c_str());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_ValueError, qext::error_summary(e).c_str());
    }
  });
  m.def("version", &qext::version);
  m.def("active_isa", &qext::active_isa);
  m.def("set_isa", &qext::set_isa, py::arg("name"));
  m.def("supported_isas", &qext::supported_isas);
  m.def("kernels_in_use", &qext::kernels_in_use);
  m.def("memory_pool_bytes", &qext::memory_pool_bytes);
  m.def("release_memory_pool", &qext::release_memory_pool);
  m.def("static_pass_through_ops", &qext::static_pass_through_ops);

  py::enum_<qext::Granularity>(m, "Granularity")
      .value("per_tensor", qext::Granularity::PerTensor)
      .value("per_channel", qext::Granularity::PerChannel);

  py::class_<qext::DynamicConfig>(m, "DynamicConfig")
      .def(py::init<>())
      .def_readwrite("include", &qext::DynamicConfig::include)
      .def_readwrite("exclude", &qext::DynamicConfig::exclude)
      .def_readwrite("module_types", &qext::DynamicConfig::module_types)
      .def_readwrite("weight_granularity", &qext::DynamicConfig::weight_granularity)
      .def_readwrite("per_row_activations", &qext::DynamicConfig::per_row_activations)
      .def_readwrite("min_weight_elements", &qext::DynamicConfig::min_weight_elements)
      .def_readwrite("quantize_matmul", &qext::DynamicConfig::quantize_matmul)
      .def_readwrite("quantize_embeddings", &qext::DynamicConfig::quantize_embeddings)
      .def_readwrite("weight_bits", &qext::DynamicConfig::weight_bits)
      .def_readwrite("activation_bits", &qext::DynamicConfig::activation_bits)
      .def_readwrite("group_size", &qext::DynamicConfig::group_size)
      .def_readwrite("low_rank", &qext::DynamicConfig::low_rank)
      .def_readwrite("low_rank_energy", &qext::DynamicConfig::low_rank_energy);

  m.def("quantize_dynamic", &qext::quantize_dynamic, py::arg("module"), py::arg("config"),
        py::call_guard<py::gil_scoped_release>());
  py::enum_<qext::Observer>(m, "Observer")
      .value("min_max", qext::Observer::MinMax)
      .value("moving_average", qext::Observer::MovingAverage)
      .value("histogram", qext::Observer::Histogram);
  py::enum_<qext::HistogramMethod>(m, "HistogramMethod")
      .value("percentile", qext::HistogramMethod::Percentile)
      .value("entropy", qext::HistogramMethod::Entropy)
      .value("mse", qext::HistogramMethod::Mse);
  py::class_<qext::StaticConfig>(m, "StaticConfig")
      .def(py::init<>())
      .def_readwrite("exclude", &qext::StaticConfig::exclude)
      .def_readwrite("observer", &qext::StaticConfig::observer)
      .def_readwrite("histogram_method", &qext::StaticConfig::histogram_method)
      .def_readwrite("percentile", &qext::StaticConfig::percentile)
      .def_readwrite("fold_batch_norm", &qext::StaticConfig::fold_batch_norm)
      .def_readwrite("weight_bits", &qext::StaticConfig::weight_bits)
      .def_readwrite("activation_bits", &qext::StaticConfig::activation_bits)
      .def_readwrite("check_finite", &qext::StaticConfig::check_finite)
      .def_readwrite("equalize", &qext::StaticConfig::equalize)
      .def_readwrite("bias_correction", &qext::StaticConfig::bias_correction);

  m.def("prepare_static", &qext::prepare_static, py::arg("module"), py::arg("config"),
        py::call_guard<py::gil_scoped_release>());
  m.def(
      "measure_sqnr",
      [](const torch::jit::Module& prepared, torch::jit::Module& quantized,
         const std::vector<std::vector<at::Tensor>>& batches) {
        const auto inputs = as_inputs(batches);
        py::gil_scoped_release release;
        qext::measure_sqnr(prepared, quantized, inputs);
      },
      py::arg("prepared"), py::arg("quantized"), py::arg("batches"));
  m.def(
      "calibrate",
      [](torch::jit::Module& prepared, const std::vector<std::vector<at::Tensor>>& batches, int64_t first_batch) {
        const auto inputs = as_inputs(batches);
        py::gil_scoped_release release;
        qext::calibrate(prepared, inputs, first_batch);
      },
      py::arg("prepared"), py::arg("batches"), py::arg("first_batch") = 0);
  m.def(
      "sqnr_batch_count",
      [](const std::vector<std::vector<at::Tensor>>& batches) {
        return qext::sqnr_batch_count(as_inputs(batches));
      },
      py::arg("batches"));
  // The metric is a Python callable: pybind11 takes the GIL back to call it.
  py::class_<qext::Calibrator>(m, "Calibrator")
      .def(py::init<torch::jit::Module>(), py::arg("prepared"))
      .def(
          "add",
          [](qext::Calibrator& self, const std::vector<at::Tensor>& batch) {
            const std::vector<c10::IValue> inputs(batch.begin(), batch.end());
            py::gil_scoped_release release;
            self.add(inputs);
          },
          py::arg("batch"))
      .def_property_readonly("batches", &qext::Calibrator::batches)
      .def("convert", &qext::Calibrator::convert, py::call_guard<py::gil_scoped_release>())
      .def("convert_within", &qext::Calibrator::convert_within, py::arg("metric"), py::arg("float_score"),
           py::arg("max_drop"), py::arg("max_float_layers") = -1, py::call_guard<py::gil_scoped_release>());
  m.def("convert", &qext::convert, py::arg("prepared"), py::call_guard<py::gil_scoped_release>());
  // The report crosses as the C++ structs (no JSON in between: names keep
  // every character, an infinite SQNR stays inf).
  py::class_<qext::LayerReport>(m, "LayerReport")
      .def_readonly("name", &qext::LayerReport::name)
      .def_readonly("kind", &qext::LayerReport::kind)
      .def_readonly("status", &qext::LayerReport::status)
      .def_readonly("reason", &qext::LayerReport::reason)
      .def_readonly("bytes_before", &qext::LayerReport::bytes_before)
      .def_readonly("bytes_after", &qext::LayerReport::bytes_after)
      .def_readonly("scale", &qext::LayerReport::scale)
      .def_readonly("zero_point", &qext::LayerReport::zero_point)
      .def_readonly("sqnr_db", &qext::LayerReport::sqnr_db);
  py::class_<qext::QuantizationReport>(m, "QuantizationReport")
      .def_readonly("mode", &qext::QuantizationReport::mode)
      .def_readonly("layers", &qext::QuantizationReport::layers);
  m.def("report", &qext::report, py::arg("module"));
  m.def("save", &qext::save, py::arg("module"), py::arg("path"), py::call_guard<py::gil_scoped_release>());
  m.def("load", &qext::load, py::arg("path"), py::call_guard<py::gil_scoped_release>());
  bind_linalg(m);
}
