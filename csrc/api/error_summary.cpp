#include <c10/util/Exception.h>

#include <typeinfo>

#include "qext/qext.h"

namespace qext {

std::string error_summary(const std::exception& error) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string what = c10_error ? c10_error->what_without_backtrace() : error.what();
  // The interpreter puts the TorchScript traceback first; the reason is last.
  const size_t last = what.rfind("RuntimeError: ");
  if (last != std::string::npos) what = what.substr(last + 14);
  // The first line that says something (some errors start with a newline).
  size_t begin = 0;
  while (begin < what.size()) {
    const size_t end = std::min(what.find('\n', begin), what.size());
    const size_t text = what.find_first_not_of(" \t\r", begin);
    if (text != std::string::npos && text < end) return what.substr(text, end - text);
    begin = end + 1;
  }
  return std::string("unknown error (") + typeid(error).name() + ")";
}

}  // namespace qext
