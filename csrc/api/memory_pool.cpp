#include "ops/memory_pool.h"

#include "qext/qext.h"

namespace qext {

int64_t memory_pool_bytes() { return ops::memory_pool_bytes(); }

void release_memory_pool() { ops::release_memory_pool(); }

}  // namespace qext
