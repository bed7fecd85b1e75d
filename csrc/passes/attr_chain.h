// Resolving `self.a.b.weight` (a chain of prim::GetAttr from a method's self)
// to the module instance that owns the attribute.
#pragma once

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <functional>
#include <optional>
#include <string>

namespace qext::passes {

struct AttrRef {
  torch::jit::Module owner;  // the module holding the attribute
  std::string owner_path;    // its qualified name, "" for the root
  std::string attr;          // the attribute's name on owner

  std::string qualified() const { return owner_path.empty() ? attr : owner_path + "." + attr; }
};

// The attribute `v` reads when v comes from a GetAttr chain starting at the
// graph's first input (self, bound to `root`); nullopt for anything else.
std::optional<AttrRef> resolve_attr(const torch::jit::Module& root, torch::jit::Value* v);

// Calls fn on every node of the block, nested blocks (if/loop bodies) included.
void visit_nodes(torch::jit::Block* block, const std::function<void(torch::jit::Node*)>& fn);

// A name for a new attribute of root: `base` with non-alphanumerics turned
// into '_', plus a numeric suffix if taken.
std::string unique_attribute_name(const torch::jit::Module& root, const std::string& base);

// Sets root's attribute `name`, registering it with `type` the first time.
void set_attribute(torch::jit::Module& root, const std::string& name, const c10::TypePtr& type,
                   const c10::IValue& value);

// After a rewrite: if no method of root reads `ref` any more, replaces it by
// an empty tensor (so saved models do not carry it) and returns true.
bool release_if_unread(const torch::jit::Module& root, AttrRef& ref);

// The only node reading v's data (shape queries aside: aten::dim / aten::size,
// as BatchNorm's input check leaves behind); nullptr if none or several.
torch::jit::Node* single_data_user(torch::jit::Value* v);

// single_data_user(v) when it is a ReLU (relu or relu_), so it can be fused;
// callers redirect the shape queries to the fused result.
torch::jit::Node* single_relu_user(torch::jit::Value* v);

// True when v is the constant integer `expected` (e.g. add's alpha == 1).
bool is_constant_int(torch::jit::Value* v, int64_t expected);

// Replaces an if/else node by the nodes of one of its branches.
void inline_if_branch(torch::jit::Node* if_node, bool take_then);

// True when any method graph of `root` still reads `ref`'s data (device,
// dtype and requires_grad queries alone do not count: release_if_unread keeps
// the first two).
bool attr_still_read(const torch::jit::Module& root, const AttrRef& ref);

}  // namespace qext::passes
