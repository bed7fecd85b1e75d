#include <ATen/core/Dict.h>
#include <ATen/core/List.h>

#include <cmath>
#include <sstream>

#include "api/report_storage.h"
#include "passes/attr_chain.h"
#include "qext/qext.h"

namespace qext {

namespace {

// name, kind, status, reason, bytes before, bytes after, scale, zero point,
// SQNR (the last three None when not applicable; older files have six fields).
c10::TypePtr row_list_type() {
  auto s = c10::StringType::get();
  auto i = c10::IntType::get();
  auto f = c10::OptionalType::create(c10::FloatType::get());
  auto oi = c10::OptionalType::create(c10::IntType::get());
  return c10::ListType::create(c10::TupleType::create({s, s, s, s, i, i, f, oi, f}));
}

template <typename T>
c10::IValue optional_ivalue(const std::optional<T>& v) {
  return v ? c10::IValue(*v) : c10::IValue();
}

std::optional<double> optional_double(const c10::IValue& v) {
  return v.isNone() ? std::nullopt : std::optional<double>(v.toDouble());
}

// JSON number or null (NaN/inf are not JSON).
template <typename T>
std::string json_number(const std::optional<T>& v) {
  if (!v || !std::isfinite(static_cast<double>(*v))) return "null";
  std::ostringstream out;
  out.precision(9);
  out << *v;
  return out.str();
}

}  // namespace

int64_t QuantizationReport::quantized() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.status != "float";  // "int8", or "int4" / "int2" / "int1"
  return n;
}

int64_t QuantizationReport::bytes_before() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.bytes_before;
  return n;
}

int64_t QuantizationReport::bytes_after() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.bytes_after;
  return n;
}

std::string QuantizationReport::to_json() const {
  std::ostringstream out;
  out << "{\"mode\": \"" << api::json_escape(mode) << "\", \"layers\": [";
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    out << (i ? ", " : "") << "{\"name\": \"" << api::json_escape(l.name) << "\", \"kind\": \""
        << l.kind << "\", \"status\": \"" << l.status << "\", \"reason\": \""
        << api::json_escape(l.reason) << "\", \"bytes_before\": " << l.bytes_before
        << ", \"bytes_after\": " << l.bytes_after << ", \"scale\": " << json_number(l.scale)
        << ", \"zero_point\": " << json_number(l.zero_point) << ", \"sqnr_db\": " << json_number(l.sqnr_db)
        << "}";
  }
  out << "]}";
  return out.str();
}

namespace {

// The attributes come from a file that may not be qext's: every row is
// checked for shape and types before it is read.
[[noreturn]] void not_a_report(const std::string& why) {
  throw std::invalid_argument("qext::report: the module's " + std::string(api::kReportAttr) +
                              " attribute is not a qext report (" + why + ")");
}

LayerReport parse_row(const c10::IValue& row, size_t index) {
  const std::string where = "row " + std::to_string(index);
  if (!row.isTuple()) not_a_report(where + " is a " + row.tagKind() + ", not a tuple");
  const auto& e = row.toTupleRef().elements();
  if (e.size() != 6 && e.size() != 9) not_a_report(where + " has " + std::to_string(e.size()) + " fields, not 6 or 9");
  for (size_t i = 0; i < 4; ++i) {
    if (!e[i].isString()) not_a_report(where + " field " + std::to_string(i) + " is not a string");
  }
  if (!e[4].isInt() || !e[5].isInt()) not_a_report(where + " byte counts are not integers");
  LayerReport l{e[0].toStringRef(), e[1].toStringRef(), e[2].toStringRef(),
                e[3].toStringRef(), e[4].toInt(), e[5].toInt()};
  if (e.size() == 9) {
    if (!(e[6].isNone() || e[6].isDouble()) || !(e[7].isNone() || e[7].isInt()) || !(e[8].isNone() || e[8].isDouble())) {
      not_a_report(where + " scale / zero point / SQNR have the wrong types");
    }
    l.scale = optional_double(e[6]);
    if (!e[7].isNone()) l.zero_point = e[7].toInt();
    l.sqnr_db = optional_double(e[8]);
  }
  return l;
}

}  // namespace

QuantizationReport report(const torch::jit::Module& module) {
  QuantizationReport r;
  if (module.hasattr(api::kMetadataAttr)) {
    const c10::IValue meta = module.attr(api::kMetadataAttr);
    if (meta.isGenericDict()) {
      for (const auto& item : meta.toGenericDict()) {
        if (item.key().isString() && item.key().toStringRef() == "mode" && item.value().isString()) {
          r.mode = item.value().toStringRef();
        }
      }
    }
  }
  if (!module.hasattr(api::kReportAttr)) return r;
  const c10::IValue rows = module.attr(api::kReportAttr);
  if (!rows.isList()) not_a_report("it is a " + std::string(rows.tagKind()) + ", not a list");
  const auto list = rows.toListRef();
  for (size_t i = 0; i < list.size(); ++i) r.layers.push_back(parse_row(list[i], i));
  return r;
}

namespace api {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

void store_report(torch::jit::Module& module, const QuantizationReport& report,
                  const std::map<std::string, std::string>& metadata) {
  c10::impl::GenericList rows(row_list_type()->containedType(0));
  for (const auto& l : report.layers) {
    rows.push_back(c10::ivalue::Tuple::create(
        {l.name, l.kind, l.status, l.reason, l.bytes_before, l.bytes_after, optional_ivalue(l.scale),
         optional_ivalue(l.zero_point), optional_ivalue(l.sqnr_db)}));
  }
  passes::set_attribute(module, kReportAttr, row_list_type(), rows);
  c10::Dict<std::string, std::string> meta;
  for (const auto& [k, v] : metadata) meta.insert(k, v);
  passes::set_attribute(module, kMetadataAttr,
                        c10::DictType::create(c10::StringType::get(), c10::StringType::get()), meta);
}

}  // namespace api
}  // namespace qext
