// The pooling kernels of every path against the rule, window by window
// (channel counts around every vector width, dilated windows, every zero-point
// extreme, windows at and past the float division's bound), and the division
// shortcuts against the integer rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "kernels/isa.h"
#include "kernels/kernel_table.h"
#include "kernels/pooling.h"

using namespace qext::kernels;

namespace {

// An image of `pixels` pixels of `channels` bytes, exactly as large as that
// (so ASan catches a read past its end).
struct Image {
  int64_t pixels, channels;
  std::vector<uint8_t> bytes;
};

Image random_image(int64_t pixels, int64_t channels, std::mt19937& rng) {
  Image im{pixels, channels, std::vector<uint8_t>(static_cast<size_t>(pixels * channels))};
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : im.bytes) b = static_cast<uint8_t>(byte(rng));
  return im;
}

// The window of rows x cols taps, `dilation` pixels apart, over an image
// `width` pixels wide, ending at the image's last byte.
PoolWindow window_at_end(const Image& im, int64_t width, int64_t rows, int64_t cols, int64_t dilation) {
  const int64_t c = im.channels;
  const int64_t last_tap = ((rows - 1) * width + (cols - 1)) * dilation;
  const uint8_t* first = im.bytes.data() + (im.pixels - 1 - last_tap) * c;
  return {first, rows, cols, dilation * width * c, dilation * c};
}

std::vector<uint8_t> max_by_rule(const PoolWindow& w, int64_t n) {
  std::vector<uint8_t> out(static_cast<size_t>(n), 0);
  for_each_tap(w, [&](const uint8_t* p) {
    for (int64_t c = 0; c < n; ++c) out[c] = std::max(out[c], p[c]);
  });
  return out;
}

std::vector<uint8_t> average_by_rule(const PoolWindow& w, int64_t n, int32_t zp, int64_t divisor) {
  std::vector<int64_t> sum(static_cast<size_t>(n), 0);
  for_each_tap(w, [&](const uint8_t* p) {
    for (int64_t c = 0; c < n; ++c) sum[c] += p[c];
  });
  std::vector<uint8_t> out(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c)
    out[c] = static_cast<uint8_t>(std::clamp<int64_t>(zp + div_round_half_even(sum[c] - w.taps() * zp, divisor), 0, 255));
  return out;
}

// Runs `kernel` into a buffer with guard bytes after the n outputs.
template <class F>
std::vector<uint8_t> run_guarded(int64_t n, F&& kernel) {
  std::vector<uint8_t> out(static_cast<size_t>(n + 64), 0xAB);
  kernel(out.data());
  for (int64_t i = n; i < n + 64; ++i) EXPECT_EQ(out[i], 0xAB) << "wrote past the window's channels";
  out.resize(static_cast<size_t>(n));
  return out;
}

constexpr int64_t kChannelCounts[] = {1, 3, 8, 15, 16, 17, 24, 31, 32, 33, 40, 63, 64, 65, 96, 127, 128, 129, 200, 256, 257, 320};

}  // namespace

TEST(PoolingKernels, EveryPathTakesTheMaxOfEachChannel) {
  std::mt19937 rng(11);
  struct Shape { int64_t rows, cols, dilation; };
  for (const Shape& sh : {Shape{1, 1, 1}, Shape{2, 2, 1}, Shape{3, 3, 1}, Shape{3, 3, 2}, Shape{1, 7, 1}, Shape{5, 2, 3}}) {
    for (int64_t n : kChannelCounts) {
      const int64_t width = 16;
      Image im = random_image(width * 16, n, rng);
      const PoolWindow w = window_at_end(im, width, sh.rows, sh.cols, sh.dilation);
      const std::vector<uint8_t> want = max_by_rule(w, n);
      for (Isa isa : supported_isas()) {
        const auto got = run_guarded(n, [&](uint8_t* o) { kernel_table(isa).max_window_u8(w, n, o); });
        ASSERT_EQ(got, want) << isa_name(isa) << " " << sh.rows << "x" << sh.cols << " dilation " << sh.dilation
                             << ", " << n << " channels";
      }
    }
  }
}

TEST(PoolingKernels, EveryPathAveragesByTheOneRoundingRule) {
  std::mt19937 rng(12);
  struct Shape { int64_t rows, cols; };
  for (const Shape& sh : {Shape{1, 1}, Shape{2, 2}, Shape{3, 3}, Shape{1, 5}, Shape{7, 7}}) {
    for (int64_t n : kChannelCounts) {
      const int64_t width = 8;
      Image im = random_image(width * 8, n, rng);
      const PoolWindow w = window_at_end(im, width, sh.rows, sh.cols, 1);
      const int64_t taps = w.taps();
      // the window's own divisor, a count_include_pad one, divisor_override's
      // small and large values, one past float's exact integers
      for (int64_t divisor : {taps, taps + 3, int64_t{1}, int64_t{7}, int64_t{1} << 24, int64_t{3} << 30}) {
        for (int32_t zp : {0, 1, 127, 128, 255}) {
          const std::vector<uint8_t> want = average_by_rule(w, n, zp, divisor);
          for (Isa isa : supported_isas()) {
            const auto got =
                run_guarded(n, [&](uint8_t* o) { kernel_table(isa).avg_window_u8(w, n, zp, divisor, o); });
            ASSERT_EQ(got, want) << isa_name(isa) << " " << sh.rows << "x" << sh.cols << ", " << n
                                 << " channels, divisor " << divisor << ", zero point " << zp;
          }
        }
      }
    }
  }
}

// Global average pooling over windows at the float division's bound
// (255 * taps just under 2^23) and one tap past it, where the vector paths
// hand over to the reference: every byte 255 or 0 (the largest numerators of
// both signs), and ties (quotients k + 1/2).
TEST(PoolingKernels, LargeWindowsAtAndPastTheFloatBound) {
  std::mt19937 rng(13);
  for (int64_t taps : {kFloatDivisionTaps, kFloatDivisionTaps + 1}) {
    for (int64_t n : {16, 33, 64}) {
      Image im = random_image(taps, n, rng);
      for (int64_t c = 0; c < n; ++c) {
        for (int64_t p = 0; p < taps; ++p) {
          uint8_t& b = im.bytes[p * n + c];
          if (c % 4 == 0) b = 255;
          if (c % 4 == 1) b = 0;
          if (c % 4 == 2) b = p == 0 ? static_cast<uint8_t>(c) : 0;  // sums 0..n: ties over an even divisor of 2 taps
        }
      }
      const PoolWindow w{im.bytes.data(), 1, taps, 0, n};
      for (int64_t divisor : {taps, int64_t{2}, int64_t{4}}) {
        for (int32_t zp : {0, 128, 255}) {
          const std::vector<uint8_t> want = average_by_rule(w, n, zp, divisor);
          for (Isa isa : supported_isas()) {
            const auto got =
                run_guarded(n, [&](uint8_t* o) { kernel_table(isa).avg_window_u8(w, n, zp, divisor, o); });
            ASSERT_EQ(got, want) << isa_name(isa) << " " << taps << " taps, " << n << " channels, divisor "
                                 << divisor << ", zero point " << zp;
          }
        }
      }
    }
  }
}

// Average pooling divides through a double: the integer rule at every
// numerator a window of up to 64 taps makes (ties included), and at the
// largest windows.
TEST(PoolingDivision, DoubleDivisionRoundsLikeTheIntegerRule) {
  for (int64_t den = 1; den <= 64; ++den) {
    for (int64_t num = -255 * 64; num <= 255 * 64; ++num) {
      ASSERT_EQ(div_round_half_even_fast(num, den), div_round_half_even(num, den)) << num << " / " << den;
    }
  }
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100000; ++i) {
    const int64_t den = 1 + static_cast<int64_t>(rng() % (int64_t{1} << 30));
    const int64_t num = static_cast<int64_t>(rng() % (int64_t{1} << 41)) - (int64_t{1} << 40);
    ASSERT_EQ(div_round_half_even_fast(num, den), div_round_half_even(num, den)) << num << " / " << den;
    const int64_t even = 2 * (1 + static_cast<int64_t>(rng() % (int64_t{1} << 20)));
    const int64_t tie = (2 * (num >> 22) + 1) * (even / 2);  // tie / even = (num >> 22) + 0.5 exactly
    ASSERT_EQ(div_round_half_even_fast(tie, even), div_round_half_even(tie, even)) << tie << " / " << even;
  }
}

// The vector paths divide through a float: the integer rule at every
// numerator of up to 64 taps, at random numerators and divisors within
// float_division_exact's bounds, at ties there and at the bounds themselves.
TEST(PoolingDivision, FloatDivisionRoundsLikeTheIntegerRuleWithinItsBounds) {
  for (int32_t den = 1; den <= 64; ++den) {
    for (int32_t num = -255 * 64; num <= 255 * 64; ++num) {
      ASSERT_EQ(div_round_half_even_float(num, den), div_round_half_even(num, den)) << num << " / " << den;
    }
  }
  const int64_t max_num = 255 * kFloatDivisionTaps;
  ASSERT_LT(max_num, int64_t{1} << 23);
  std::mt19937_64 rng(4);
  for (int i = 0; i < 1000000; ++i) {
    const auto den = static_cast<int32_t>(1 + rng() % kFloatDivisionDivisor);
    const auto num = static_cast<int32_t>(static_cast<int64_t>(rng() % (2 * max_num + 1)) - max_num);
    ASSERT_EQ(div_round_half_even_float(num, den), div_round_half_even(num, den)) << num << " / " << den;
    // ties: an odd multiple of half an even divisor
    const auto half = static_cast<int32_t>(1 + rng() % 4096);
    const auto k = static_cast<int32_t>(rng() % (max_num / half));
    const int32_t tie = (k % 2 ? k : k - 1) * half * (i % 2 ? 1 : -1);
    ASSERT_EQ(div_round_half_even_float(tie, 2 * half), div_round_half_even(tie, 2 * half)) << tie << " / " << 2 * half;
  }
  for (int32_t num : {static_cast<int32_t>(max_num), static_cast<int32_t>(-max_num), (1 << 23) - 1, -((1 << 23) - 1)}) {
    for (int32_t den : {1, 2, 3, 255, 256, 65535, static_cast<int32_t>(kFloatDivisionDivisor)}) {
      ASSERT_EQ(div_round_half_even_float(num, den), div_round_half_even(num, den)) << num << " / " << den;
    }
  }
}

// Past the bound, float cannot hold every sum: 65928 taps summing to
// 254.5 * 65928 + 1 = 16778677 round to the tie 16778676 in float, whose
// quotient 254.5 rounds to 254, where the rule gives 255. Every path must
// still give 255.
TEST(PoolingKernels, AWindowWhoseSumFloatCannotHoldTakesTheExactPath) {
  constexpr int64_t kTaps = 65928, kChannels = 16;
  constexpr int64_t kSum = 255 * kTaps - kTaps / 2 + 1;
  ASSERT_NE(static_cast<int64_t>(static_cast<float>(kSum)), kSum);
  Image im{kTaps, kChannels, std::vector<uint8_t>(static_cast<size_t>(kTaps * kChannels))};
  int64_t deficit = 255 * kTaps - kSum;
  for (int64_t p = 0; p < kTaps; ++p) {
    const int64_t take = std::min<int64_t>(255, deficit);
    deficit -= take;
    std::fill_n(im.bytes.begin() + p * kChannels, kChannels, static_cast<uint8_t>(255 - take));
  }
  const PoolWindow w{im.bytes.data(), 1, kTaps, 0, kChannels};
  ASSERT_EQ(average_by_rule(w, kChannels, 0, kTaps), std::vector<uint8_t>(kChannels, 255));
  for (Isa isa : supported_isas()) {
    const auto got = run_guarded(kChannels, [&](uint8_t* o) { kernel_table(isa).avg_window_u8(w, kChannels, 0, kTaps, o); });
    ASSERT_EQ(got, std::vector<uint8_t>(kChannels, 255)) << isa_name(isa);
  }
}
