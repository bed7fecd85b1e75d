#include "ops/memory_pool.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <pthread.h>
#include <sys/mman.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace qext::ops {

namespace {

// A block is mapped from the system directly, not taken from malloc: glibc
// raises its mmap threshold (and so serves later large blocks from its heap)
// only when it frees a mapped block, and blocks the pool kept for good would
// leave it low, so every large ATen tensor between qext's ops (a Transformer's
// LayerNorm and adds) would be mapped and fault anew each forward.
struct Block {
  void* data;
  size_t bytes;  // the size class
};

// Under AddressSanitizer pooled memory stays checked: free blocks and the
// bytes past a tensor's end are poisoned, so uses after free and overruns
// still report.
#if defined(__SANITIZE_ADDRESS__)
void poison(void* p, size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
void unpoison(void* p, size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
#else
void poison(void*, size_t) {}
void unpoison(void*, size_t) {}
#endif

Block* map_block(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  Block* block = new (std::nothrow) Block{p, bytes};
  if (!block) munmap(p, bytes);  // no record of it: give the mapping back rather than leak it
  return block;
}

void unmap_block(Block* block) {
  if (!block) return;
  unpoison(block->data, block->bytes);
  munmap(block->data, block->bytes);
  delete block;
}

// Sizes round up to steps of 1/8 of their power of two (at least a page):
// the same layer's tensors share a class, and a block serves a request at
// most 12.5 % smaller.
size_t size_class(size_t n) {
  size_t top = 1;
  while (top * 2 <= n) top *= 2;
  const size_t step = std::max<size_t>(4096, top / 8);
  return (n + step - 1) / step * step;
}

int64_t limit_from_env() {
  constexpr int64_t kDefaultMb = 256;
  const char* v = std::getenv("QEXT_POOL_MB");
  if (!v || !*v) return kDefaultMb << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(v, &end, 10);
  TORCH_CHECK(*end == '\0' && mb >= 0 && mb <= (int64_t{1} << 30), "QEXT_POOL_MB=", v,
              " is not a number of megabytes (0 turns qext's memory pool off; the default is ", kDefaultMb, ")");
  return static_cast<int64_t>(mb) << 20;
}

class Pool {
 public:
  Block* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        Block* block = it->second.back();
        it->second.pop_back();
        free_bytes_ -= static_cast<int64_t>(bytes);
        return block;
      }
    }
    return map_block(bytes);
  }

  // Keeps the block, making room by freeing others when the pool is full:
  // the sizes freed last are the likeliest to be asked for next. A tensor's
  // deleter calls this, so it must not throw: when the lists cannot grow,
  // the blocks are freed instead.
  void give_back(Block* block) noexcept {
    const auto bytes = static_cast<int64_t>(block->bytes);
    poison(block->data, block->bytes);
    if (bytes > limit_) return unmap_block(block);
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      for (auto it = free_.begin(); it != free_.end() && free_bytes_ + bytes > limit_;) {
        if (it->second.empty()) {
          it = free_.erase(it);
          continue;
        }
        unmap_block(it->second.back());  // (under the lock: rare, as malloc's own unmapping)
        it->second.pop_back();
        free_bytes_ -= static_cast<int64_t>(it->first);
      }
      free_[static_cast<size_t>(bytes)].push_back(block);
      free_bytes_ += bytes;
    } catch (...) {
      unmap_block(block);
    }
  }

  bool enabled() const { return limit_ > 0; }

  void lock() { mutex_.lock(); }
  void unlock() { mutex_.unlock(); }

  int64_t free_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_bytes_;
  }

  void release() {
    std::unordered_map<size_t, std::vector<Block*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      free_bytes_ = 0;
    }
    for (auto& [bytes, list] : blocks)
      for (Block* block : list) unmap_block(block);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<Block*>> free_;
  int64_t free_bytes_ = 0;
  const int64_t limit_ = limit_from_env();
};

// Never destroyed: tensors may be freed during static destruction.
Pool& pool() {
  static Pool* p = [] {
    auto* created = new Pool;
    // A fork while another thread holds the lock would leave the child's copy
    // locked forever: hold it across the fork, as malloc does its own.
    pthread_atfork([] { pool().lock(); }, [] { pool().unlock(); }, [] { pool().unlock(); });
    return created;
  }();
  return *p;
}

void give_back(void* block) { pool().give_back(static_cast<Block*>(block)); }

class PooledCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    if (n < static_cast<size_t>(kMinPooledBytes) || n > static_cast<size_t>(kMaxPooledBytes) || !pool().enabled())
      return c10::GetCPUAllocator()->allocate(n);
    const size_t bytes = size_class(n);
    Block* block = pool().take(bytes);
    TORCH_CHECK(block, "qext: out of memory allocating ", n, " bytes");
    unpoison(block->data, n);
    poison(static_cast<char*>(block->data) + n, bytes - n);
    return {block->data, block, &give_back, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

PooledCpuAllocator& allocator() {
  static PooledCpuAllocator* a = new PooledCpuAllocator;
  return *a;
}

}  // namespace

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  if (!options.device().is_cpu() || options.layout() != at::kStrided || options.pinned_memory() ||
      options.requires_grad())
    return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &allocator(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), options.memory_format_opt());
}

int64_t memory_pool_bytes() { return pool().free_bytes(); }

void release_memory_pool() { pool().release(); }

}  // namespace qext::ops
