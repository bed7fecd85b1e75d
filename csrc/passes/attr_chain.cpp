#include "passes/attr_chain.h"

#include <ATen/ATen.h>

#include <cctype>
#include <vector>

namespace qext::passes {

using torch::jit::Module;
using torch::jit::Value;

std::optional<AttrRef> resolve_attr(const Module& root, Value* v) {
  std::vector<std::string> names;
  while (v->node()->kind() == torch::jit::prim::GetAttr) {
    names.push_back(v->node()->s(torch::jit::attr::name));
    v = v->node()->input(0);
  }
  // Must end at the method's self argument.
  if (names.empty() || v->node()->kind() != torch::jit::prim::Param || v->offset() != 0 ||
      v->type() != root.type()) {
    return std::nullopt;
  }
  AttrRef ref{root, "", names.front()};
  for (auto it = names.rbegin(); it != names.rend() - 1; ++it) {
    if (!ref.owner.hasattr(*it)) return std::nullopt;
    const c10::IValue child = ref.owner.attr(*it);
    if (!child.isModule()) return std::nullopt;
    ref.owner = child.toModule();
    ref.owner_path = ref.owner_path.empty() ? *it : ref.owner_path + "." + *it;
  }
  if (!ref.owner.hasattr(ref.attr)) return std::nullopt;
  return ref;
}

void visit_nodes(torch::jit::Block* block, const std::function<void(torch::jit::Node*)>& fn) {
  for (torch::jit::Node* node : block->nodes()) {
    fn(node);
    for (torch::jit::Block* inner : node->blocks()) visit_nodes(inner, fn);
  }
}

std::string unique_attribute_name(const Module& root, const std::string& base) {
  std::string clean;
  for (char ch : base) clean += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  std::string name = clean;
  for (int i = 1; root.hasattr(name); ++i) name = clean + "_" + std::to_string(i);
  return name;
}

void set_attribute(Module& root, const std::string& name, const c10::TypePtr& type, const c10::IValue& value) {
  if (root.hasattr(name)) {
    root.setattr(name, value);
  } else {
    root.register_attribute(name, type, value);
  }
}

bool release_if_unread(const Module& root, AttrRef& ref) {
  if (attr_still_read(root, ref)) return false;
  const at::Tensor w = ref.owner.attr(ref.attr).toTensor();
  ref.owner.setattr(ref.attr, at::empty({0}, w.options()));
  return true;
}

torch::jit::Node* single_data_user(torch::jit::Value* v) {
  torch::jit::Node* only = nullptr;
  for (const auto& use : v->uses()) {
    const auto k = use.user->kind();
    if (k == torch::jit::aten::dim || k == torch::jit::aten::size) continue;  // shape checks (e.g. BatchNorm's)
    if (only) return nullptr;
    only = use.user;
  }
  return only;
}

torch::jit::Node* single_relu_user(torch::jit::Value* v) {
  torch::jit::Node* user = single_data_user(v);
  if (!user) return nullptr;
  const auto k = user->kind();
  return k == torch::jit::aten::relu || k == torch::jit::aten::relu_ ? user : nullptr;
}

bool is_constant_int(torch::jit::Value* v, int64_t expected) {
  const auto iv = torch::jit::toIValue(v);
  return iv && iv->isInt() && iv->toInt() == expected;
}

void inline_if_branch(torch::jit::Node* if_node, bool take_then) {
  torch::jit::Block* kept = if_node->blocks()[take_then ? 0 : 1];
  for (auto it = kept->nodes().begin(); it != kept->nodes().end();) {
    torch::jit::Node* moved = *it;
    ++it;
    moved->moveBefore(if_node);
  }
  for (size_t i = 0; i < if_node->outputs().size(); ++i) {
    if_node->outputs()[i]->replaceAllUsesWith(kept->outputs()[i]);
  }
  if_node->destroy();
}

namespace {

// Device, dtype and requires_grad queries (nn.TransformerEncoderLayer's
// fast-path checks): an empty tensor made with the weight's options answers
// the first two alike, and the last only fed the fast-path choice qext pins.
bool only_metadata_uses(torch::jit::Value* v) {
  for (const auto& use : v->uses()) {
    const auto k = use.user->kind();
    if (k != torch::jit::prim::device && k != torch::jit::prim::dtype && k != torch::jit::prim::requires_grad) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool attr_still_read(const Module& root, const AttrRef& ref) {
  const std::string wanted = ref.qualified();
  bool read = false;
  for (const auto& method : root.get_methods()) {
    visit_nodes(method.graph()->block(), [&](torch::jit::Node* node) {
      if (read || node->kind() != torch::jit::prim::GetAttr || only_metadata_uses(node->output())) return;
      const auto found = resolve_attr(root, node->output());
      read = found && found->qualified() == wanted;
    });
  }
  return read;
}

}  // namespace qext::passes
