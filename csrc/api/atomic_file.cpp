#include "api/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <streambuf>
#include <system_error>

namespace qext::api {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(int err, const std::string& path, const std::string& what) {
  throw std::system_error(err, std::generic_category(), "qext::save: cannot write '" + path + "': " + what);
}

// A std::streambuf over a file descriptor that remembers the first errno, so
// a full disk surfaces as ENOSPC rather than as a generic stream failure.
// After an error it drops what it is given but reports success: LibTorch's
// zip writer finishes its archive in its destructor, and a write failing
// there would throw from a destructor and abort the process. The caller
// checks error() once the writer is done.
class FdStreamBuf : public std::streambuf {
 public:
  explicit FdStreamBuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    flush_buffer();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n < static_cast<std::streamsize>(sizeof buf_)) return std::streambuf::xsputn(s, n);
    flush_buffer();
    write_all(s, static_cast<size_t>(n));
    return n;
  }
  int sync() override {
    flush_buffer();
    return 0;
  }

 private:
  void flush_buffer() {
    const auto n = static_cast<size_t>(pptr() - pbase());
    if (n > 0) write_all(pbase(), n);
    setp(buf_, buf_ + sizeof buf_);
  }
  void write_all(const char* p, size_t n) {
    while (n > 0 && error_ == 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno != EINTR) error_ = errno;
        continue;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  int fd_;
  int error_ = 0;
  char buf_[1 << 16];
};

// A name beside the target no other writer picks: pid, a process-wide counter
// and random bits (several threads or processes may save to one path at once).
fs::path temporary_name(const fs::path& dir, const fs::path& target) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return dir / ("." + target.filename().string() + ".qext-tmp-" + std::to_string(::getpid()) + "-" +
                std::to_string(counter++) + "-" + std::to_string(rng() & 0xffffffffu));
}

// Opens a new file in `dir` exclusively (never through a planted symlink).
// Prefers an unnamed O_TMPFILE inode, which a crash or kill -9 cannot leave
// behind; `named` stays empty then.
int open_temporary(const fs::path& dir, const fs::path& target, const std::string& path, fs::path* named) {
#ifdef O_TMPFILE
  if (::access("/proc/self/fd", X_OK) == 0) {
    const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
  }
#endif
  for (int attempt = 0; attempt < 64; ++attempt) {
    *named = temporary_name(dir, target);
    const int fd = ::open(named->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) fail(errno, path, "cannot create a temporary file in '" + dir.string() + "'");
  }
  fail(EEXIST, path, "no free temporary file name in '" + dir.string() + "'");
}

// Gives an unnamed temporary file a unique name in `dir`.
fs::path link_temporary(int fd, const fs::path& dir, const fs::path& target, const std::string& path) {
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  for (int attempt = 0; attempt < 64; ++attempt) {
    const fs::path name = temporary_name(dir, target);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return name;
    if (errno != EEXIST) fail(errno, path, "cannot link the temporary file into '" + dir.string() + "'");
  }
  fail(EEXIST, path, "no free temporary file name in '" + dir.string() + "'");
}

void sync_folder(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename is done; a folder we cannot open is not worth failing over
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (target.filename().empty()) fail(EISDIR, path, "the path names a folder, not a file");
  if (!fs::is_directory(dir, ec)) fail(ENOENT, path, "folder '" + dir.string() + "' does not exist");
  if (fs::is_directory(target, ec)) fail(EISDIR, path, "it is a folder");

  fs::path named;
  const int fd = open_temporary(dir, target, path, &named);
  auto discard = [&] {
    ::close(fd);
    if (!named.empty()) ::unlink(named.c_str());
  };
  try {
    FdStreamBuf buf(fd);
    std::ostream out(&buf);
    try {
      write(out);
      out.flush();
    } catch (...) {
      // A writer that gave up because the disk did reports the errno, not its own words.
      if (buf.error() == 0) throw;
    }
    if (buf.error() != 0) fail(buf.error(), path, std::strerror(buf.error()));
    if (!out) fail(EIO, path, "the stream failed while writing");
    if (::fsync(fd) != 0) fail(errno, path, std::string("flushing to disk failed: ") + std::strerror(errno));
    if (named.empty()) named = link_temporary(fd, dir, target, path);
    if (::rename(named.c_str(), target.c_str()) != 0) fail(errno, path, std::strerror(errno));
  } catch (...) {
    discard();
    throw;
  }
  ::close(fd);
  sync_folder(dir);
}

}  // namespace qext::api
