// qext._C: the C++ API exposed to Python, nothing more. Importing it loads
// libqext, which registers the qext ops and classes with the dispatcher.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "qext/qext.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "qext native bindings (use the qext package, not this module)";
  m.def("version", &qext::version);
  m.def("active_isa", &qext::active_isa);
  m.def("set_isa", &qext::set_isa, py::arg("name"));
  m.def("supported_isas", &qext::supported_isas);
}
