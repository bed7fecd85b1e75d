#include "kernels/grouped.h"

#include <cstring>
#include <stdexcept>

#include "kernels/kernel_table.h"

namespace qext::kernels {

namespace {

// A path's multiply-accumulate: lanes per block, input channels per word and
// the window (in input channels) its permutation selects from.
struct GroupedLayout {
  int64_t lanes, step, window;
};

// Narrow weights (every |w| <= 64) let AVX2 multiply bytes (vpmaddubsw's
// pair sums are at most 255 * 64 * 2: exact) instead of int16 pairs.
GroupedLayout layout_of(Isa isa, bool narrow) {
  switch (isa) {
    case Isa::Avx2:
      if (narrow) return {8, 4, 32};  // 32 bytes: 8 quad words
      return {8, 2, 16};              // 16 bytes widened to int16: 8 pair words
    case Isa::Avx512Vnni:
    case Isa::Amx: return {16, 4, 64};  // 64 bytes: 16 quad words
    default: return {16, 0, 0};         // the reference reads `plain`
  }
}

bool is_narrow(const int8_t* w, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (w[i] < -64 || w[i] > 64) return false;
  return true;
}

int32_t word_of(const int8_t* values, int64_t step) {
  uint32_t word = 0;
  for (int64_t k = 0; k < step; ++k) {
    const uint32_t v = step == 4 ? static_cast<uint8_t>(values[k]) : static_cast<uint16_t>(int16_t{values[k]});
    word |= v << (32 / step * k);
  }
  return static_cast<int32_t>(word);
}

std::optional<GroupedWeights> pack_with(const GroupedLayout& l, const int8_t* w, int64_t channels,
                                        int64_t group_width, int64_t taps) {
  GroupedWeights p;
  p.channels = channels, p.group_width = group_width, p.taps = taps;
  p.lanes = l.lanes, p.step = l.step;
  p.plain.assign(w, w + channels * group_width * taps);
  p.sums.assign(channels, 0);
  for (int64_t o = 0; o < channels; ++o)
    for (int64_t i = 0; i < group_width * taps; ++i) p.sums[o] += w[o * group_width * taps + i];
  if (l.step == 0) return p;
  if (group_width % l.step != 0) return std::nullopt;
  p.steps = group_width / l.step;
  const int64_t blocks = p.blocks(), g = group_width;
  p.words.assign(blocks * taps * p.steps * l.lanes, 0);
  p.window_start.assign(blocks, 0);
  p.lane_word.assign(blocks * p.steps * l.lanes, 0);
  std::vector<int8_t> values(l.step);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t first = b * l.lanes, last = std::min(channels, first + l.lanes) - 1;
    const int64_t start = first / g * g, end = last / g * g + g;
    if (end - start > l.window) return std::nullopt;
    p.window_start[b] = static_cast<int32_t>(start);
    for (int64_t lane = 0; first + lane <= last; ++lane) {
      const int64_t o = first + lane;
      for (int64_t s = 0; s < p.steps; ++s) {
        p.lane_word[(b * p.steps + s) * l.lanes + lane] = static_cast<int32_t>((o / g * g - start) / l.step + s);
        for (int64_t t = 0; t < taps; ++t) {
          for (int64_t k = 0; k < l.step; ++k) values[k] = w[(o * g + s * l.step + k) * taps + t];
          p.words[((b * taps + t) * p.steps + s) * l.lanes + lane] = word_of(values.data(), l.step);
        }
      }
    }
  }
  return p;
}

}  // namespace

std::optional<GroupedWeights> grouped_pack_weights(const int8_t* w, int64_t channels, int64_t group_width,
                                                   int64_t taps, Isa isa) {
  if (channels <= 0 || group_width <= 0 || taps <= 0 || channels % group_width != 0) {
    throw std::invalid_argument("grouped_pack_weights: channels must be a positive multiple of the group width");
  }
  // AVX2 with narrow weights: bytes where the width allows, else int16 pairs.
  if (isa == Isa::Avx2 && is_narrow(w, channels * group_width * taps)) {
    if (auto p = pack_with(layout_of(isa, true), w, channels, group_width, taps)) return p;
  }
  return pack_with(layout_of(isa, false), w, channels, group_width, taps);
}

void grouped_conv_u8(const GroupedArgs& args, int64_t row_begin, int64_t row_end, Isa isa) {
  const GroupedWeights& w = *args.weights;
  const auto reads = [&](const GroupedLayout& l) { return w.step == l.step && w.lanes == l.lanes; };
  if (!reads(layout_of(isa, false)) && !reads(layout_of(isa, true))) {
    throw std::invalid_argument(std::string("grouped_conv_u8: weights packed for another path than ") + isa_name(isa));
  }
  kernel_table(isa).grouped_u8(args, row_begin, row_end);
}

}  // namespace qext::kernels
