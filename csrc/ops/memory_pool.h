// Memory for the tensors the static int8 ops create (uint8 activations and
// the padded images of convs), kept after they are freed and handed out
// again.
//
// Why: a process that loads an int8 model and runs it (the deployment case)
// got its large blocks fresh from the kernel on every forward -- glibc maps
// them, or trims its heap and grows it again -- and the first touch of every
// 4 KB page faulted. A loaded MobileNetV2 took about 650 page faults per
// forward, a third of its time (docs/benchmarks.md). Reusing blocks removes
// them, as ONNX Runtime's arena does.
//
// Not for the dynamic ops' float outputs: pooling those kept their frees from
// glibc, whose mmap threshold then stayed low, and a loaded MiniLM's ATen
// tensors between the ops (LayerNorm, residual adds) faulted instead (24,000
// faults per forward, 1.2x slower). The blocks are mapped from the system
// directly, so the pool leaves malloc's state as it was.
//
// Bounded: only blocks of kMinPooledBytes to kMaxPooledBytes are pooled
// (tinier ones come from malloc's bins, cheaply; blocks of a few KB, a deep
// layer's outputs, took 1.7 us each from glibc's aligned allocator; a larger
// one is returned at once, so one huge call leaves nothing behind), and at most
// QEXT_POOL_MB megabytes (default 256; 0 turns pooling off) are held while
// free. release_memory_pool() returns every free block to the system.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace qext::ops {

constexpr int64_t kMinPooledBytes = int64_t{4} << 10;
constexpr int64_t kMaxPooledBytes = int64_t{32} << 20;

// at::empty, with a CPU tensor's storage drawn from the pool (other devices,
// layouts and pinned memory: at::empty itself).
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// Bytes held by the pool in free blocks.
int64_t memory_pool_bytes();
// Frees every free block (blocks in use return to the pool when released).
void release_memory_pool();

}  // namespace qext::ops
