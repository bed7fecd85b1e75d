// The depthwise kernel of every path against the definition written out here:
// integer sums over the window and the scalar epilogue rules, compared byte
// for byte over awkward channel counts, strides, dilations, paddings, zero
// points and extreme operands. The image ends at an unreadable page, so a
// read past it fails the test.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/depthwise.h"
#include "kernels/ref/scalar_rules.h"

using namespace qext::kernels;

namespace {

struct Case {
  int64_t n, c, hp, wp, k, stride, dilation;  // hp, wp: padded sizes
  int32_t x_zero_point;
  bool extreme;  // all pixels 255 and weights +-127 (+-64 when narrow): the largest sums
  bool narrow;   // weights within +-64: the AVX2 path's vpmaddubsw layout (ColumnQuads)
  int64_t pad_h = 0, pad_w = 0;  // of hp, wp: padding, not stored
};

// `bytes` bytes that end where an unreadable page begins.
class GuardedBytes {
 public:
  explicit GuardedBytes(size_t bytes) : page_(static_cast<size_t>(sysconf(_SC_PAGESIZE))) {
    span_ = (bytes + page_ - 1) / page_ * page_ + page_;
    void* m = mmap(nullptr, span_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<uint8_t*>(m);
    if (mprotect(base_ + span_ - page_, page_, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    data_ = base_ + span_ - page_ - bytes;
  }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  ~GuardedBytes() { munmap(base_, span_); }
  uint8_t* data() const { return data_; }

 private:
  size_t page_, span_;
  uint8_t* base_;
  uint8_t* data_;
};

// The images with their padding stored: x_zero_point around each.
std::vector<uint8_t> padded_images(const DepthwiseArgs& a) {
  const int64_t c = a.channels, h = a.h(), w = a.w();
  std::vector<uint8_t> out(static_cast<size_t>(a.n * a.hp * a.wp * c), static_cast<uint8_t>(a.x_zero_point));
  for (int64_t img = 0; img < a.n; ++img)
    for (int64_t y = 0; y < h; ++y)
      std::memcpy(out.data() + ((img * a.hp + y + a.pad_h) * a.wp + a.pad_w) * c, a.image + (img * h + y) * w * c,
                  static_cast<size_t>(w * c));
  return out;
}

std::vector<uint8_t> reference(const DepthwiseArgs& a, const std::vector<int8_t>& w) {
  const int64_t taps = a.kh * a.kw;
  const std::vector<uint8_t> image = padded_images(a);
  std::vector<uint8_t> out(a.n_rows() * a.ow * a.channels);
  for (int64_t row = 0; row < a.n_rows(); ++row) {
    const int64_t img = row / a.oh, oy = row % a.oh;
    for (int64_t ox = 0; ox < a.ow; ++ox) {
      for (int64_t c = 0; c < a.channels; ++c) {
        int32_t acc = 0;
        for (int64_t i = 0; i < a.kh; ++i) {
          for (int64_t j = 0; j < a.kw; ++j) {
            const int64_t y = oy * a.sh + i * a.dh, x = ox * a.sw + j * a.dw;
            const int32_t v = image[((img * a.hp + y) * a.wp + x) * a.channels + c];
            acc += (v - a.x_zero_point) * w[c * taps + i * a.kw + j];
          }
        }
        const float f = ref::epilogue_float(acc, a.x_scale, a.w_scale[c], a.bias, c, a.clamp_min, a.clamp_max);
        out[(row * a.ow + ox) * a.channels + c] = static_cast<uint8_t>(ref::quantize_one(f, a.out_scale, a.out_zero_point, 0, 255));
      }
    }
  }
  return out;
}

}  // namespace

TEST(DepthwiseKernel, EveryPathMatchesTheDefinition) {
  // Each shape with full-range and with narrow weights; channel counts with
  // and without a partial 16- and 32-channel block, tap counts that fill
  // whole 4-tap words (2x2) and that leave 1 to 3 empty taps.
  const Case shapes[] = {
      {1, 1, 5, 5, 3, 1, 1, 0, false, false},    {2, 13, 7, 9, 3, 1, 1, 128, false, false},
      {1, 16, 9, 9, 3, 2, 1, 255, false, false}, {1, 77, 11, 11, 5, 1, 2, 37, false, false},
      {2, 80, 8, 8, 3, 2, 1, 3, false, false},   {1, 144, 6, 6, 3, 1, 1, 200, false, false},
      {1, 32, 6, 6, 1, 1, 1, 9, false, false},   {1, 96, 7, 7, 3, 1, 1, 128, false, false},
      {1, 70, 13, 13, 7, 1, 1, 0, true, false},  {1, 70, 13, 13, 7, 1, 1, 255, true, false},
      {1, 33, 10, 10, 2, 1, 1, 128, true, false}, {1, 48, 9, 9, 3, 1, 1, 0, true, false},
      // 5 to 32 channels (one partial vector block) at strides 1 and 2,
      // even and odd row widths, dilation, an 8 x 8 kernel (16 tap quads).
      // 16 and 32 channels at stride 1 take 2 or 4 pixels per vector block
      // (pixels_per_block); odd widths leave single-pixel tails.
      {2, 32, 9, 8, 3, 1, 1, 128, false, false},  {1, 32, 12, 11, 3, 2, 1, 7, false, false},
      {1, 24, 9, 10, 3, 1, 1, 255, false, false}, {1, 16, 7, 10, 3, 1, 1, 64, false, false},
      {1, 8, 7, 8, 3, 2, 1, 0, false, false},     {1, 5, 9, 12, 3, 1, 2, 31, false, false},
      {1, 12, 10, 11, 8, 1, 1, 90, false, false}, {1, 32, 9, 13, 3, 1, 1, 0, true, false},
      {1, 16, 6, 9, 3, 1, 1, 255, true, false},
  };
  // Each shape unpadded, padded by half the kernel (a "same" conv), and
  // padded on one axis only, as far as the image keeps a row and a column.
  std::vector<Case> cases;
  for (const Case& shape : shapes) {
    const int64_t half = shape.k / 2 * shape.dilation;
    const int64_t pads[3][2] = {{0, 0}, {half, half}, {std::min<int64_t>(1, half), 0}};
    for (const auto& pad : pads) {
      if (2 * pad[0] >= shape.hp || 2 * pad[1] >= shape.wp || (pad != pads[0] && pad[0] + pad[1] == 0)) continue;
      for (bool narrow : {false, true}) {
        Case t = shape;
        t.pad_h = pad[0], t.pad_w = pad[1], t.narrow = narrow;
        cases.push_back(t);
      }
    }
  }
  std::mt19937 rng(7);
  for (const Case& t : cases) {
    const int64_t taps = t.k * t.k;
    DepthwiseArgs a;
    a.hp = t.hp, a.wp = t.wp, a.channels = t.c;
    a.pad_h = t.pad_h, a.pad_w = t.pad_w;
    a.kh = a.kw = t.k, a.sh = a.sw = t.stride, a.dh = a.dw = t.dilation;
    a.oh = (t.hp - t.dilation * (t.k - 1) - 1) / t.stride + 1;
    a.ow = (t.wp - t.dilation * (t.k - 1) - 1) / t.stride + 1;
    const size_t image_bytes = static_cast<size_t>(t.n * a.h() * a.w() * t.c);
    const GuardedBytes image(image_bytes);
    std::vector<int8_t> w(t.c * taps);
    std::vector<float> w_scale(t.c), bias(t.c);
    for (size_t i = 0; i < image_bytes; ++i) image.data()[i] = t.extreme ? 255 : static_cast<uint8_t>(rng() % 256);
    const int w_max = t.narrow ? 64 : 127;
    for (size_t i = 0; i < w.size(); ++i)
      w[i] = static_cast<int8_t>(t.extreme ? (i % 2 ? -w_max : w_max) : static_cast<int>(rng() % (2 * w_max + 1)) - w_max);
    for (int64_t c = 0; c < t.c; ++c) {
      w_scale[c] = 0.001f + 0.0001f * static_cast<float>(c);
      bias[c] = static_cast<float>(static_cast<int>(rng() % 200) - 100) * 0.01f;
    }
    a.image = image.data();
    a.x_zero_point = t.x_zero_point;
    a.x_scale = 0.02f;
    a.w_scale = w_scale.data();
    a.bias = t.extreme ? nullptr : bias.data();
    a.clamp_min = t.extreme ? -1e30f : 0.0f;  // ReLU on the random cases
    a.clamp_max = 1e30f;
    a.out_scale = t.extreme ? 64.0f : 0.05f;
    a.out_zero_point = 100;
    a.n = t.n;
    const std::vector<uint8_t> want = reference(a, w);
    for (Isa isa : supported_isas()) {
      const DepthwiseWeights packed = depthwise_pack_weights(w.data(), t.c, t.k, t.k, isa);
      // 4-row column words on AVX-512 always (vpdpbusd), on AVX2 for narrow
      // weights (vpmaddubsw).
      const bool quads = isa == Isa::Avx512Vnni || isa == Isa::Amx || (isa == Isa::Avx2 && t.narrow);
      const DepthwiseLayout layout = quads ? DepthwiseLayout::ColumnQuads : DepthwiseLayout::TapPairs;
      EXPECT_EQ(packed.layout(), layout) << isa_name(isa);
      a.weights = &packed;
      std::vector<uint8_t> got(want.size(), 0);
      a.out = got.data();
      depthwise_conv_u8(a, 0, a.n_rows(), isa);
      EXPECT_EQ(got, want) << isa_name(isa) << " c=" << t.c << " k=" << t.k << " zp=" << t.x_zero_point
                           << " narrow=" << t.narrow << " pad=" << t.pad_h << "," << t.pad_w;
    }
  }
}
