// A heap array aligned to 64 bytes (a cache line, and any vector width's
// aligned loads), for packed weights and GEMM workspaces. Uninitialised
// unless `zeroed`: workspaces are written before they are read.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace qext::kernels {

template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t count, bool zeroed = false) {
    if (count == 0) return;
    const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;  // aligned_alloc wants a multiple
    data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    if (!data_) throw std::bad_alloc();
    if (zeroed) std::memset(static_cast<void*>(data_.get()), 0, bytes);
  }
  T* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
};

}  // namespace qext::kernels
