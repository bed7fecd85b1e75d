// Writing a file so that readers see either the old file or the whole new one,
// never a partial one: the bytes go to an unnamed (or unique, exclusively
// created) file in the target's folder, are flushed to disk, and the file is
// then renamed over the target.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace qext::api {

// Calls write(stream) and atomically replaces `path` with what it wrote.
// Throws std::system_error (with the errno: ENOSPC, EACCES, ENOENT, ...) on an
// I/O failure, or rethrows what `write` threw; either way no temporary file is
// left behind and `path` is untouched.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace qext::api
