// qext::_probe(x, key): records x under `key` while a ProbeSession is active
// on this thread (and does nothing otherwise). Used to compare a layer's int8
// output with the float model's (per-layer SQNR); never left in saved models.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace qext::ops {

class ProbeSession {
 public:
  ProbeSession();
  ~ProbeSession();
  ProbeSession(const ProbeSession&) = delete;
  ProbeSession& operator=(const ProbeSession&) = delete;

  // Tensors recorded since the last take(), by key; clears them.
  std::map<std::string, at::Tensor> take();

 private:
  friend at::Tensor probe(const at::Tensor& x, const std::string& key);
  std::map<std::string, at::Tensor> recorded_;
  ProbeSession* previous_;
};

at::Tensor probe(const at::Tensor& x, const std::string& key);

}  // namespace qext::ops
