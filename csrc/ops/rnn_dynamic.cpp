#include "ops/rnn_dynamic.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "ops/linear_dynamic.h"

namespace qext::ops {

namespace {

using Mode = PackedRnnWeight::Mode;

void check_state(const char* op, const char* what, const at::Tensor& s, const PackedRnnWeight& w, int64_t batch) {
  const int64_t cells = w.num_layers() * w.directions();
  TORCH_CHECK(s.dim() == 3 && s.size(0) == cells && s.size(1) == batch && s.size(2) == w.hidden_size(), op, ": ",
              what, " must be [", cells, ", ", batch, ", ", w.hidden_size(), "]; got ", s.sizes());
  TORCH_CHECK(s.scalar_type() == at::kFloat, op, ": ", what, " must be float32; got ", s.scalar_type());
}

// The gates of one step: xp and hp are the step's input and recurrent
// projections [B, gates * H] (biases included); h and c [B, H] are updated in
// place. The arithmetic runs in plain loops and the transcendentals in two
// vectorised ATen calls over whole buffers (per-gate ATen calls and their
// views cost more than the GEMMs at batch 1, scalar exp/tanh more than the
// GEMMs at batch 16). tanh(v) = 2 sigmoid(2v) - 1, so one sigmoid serves all
// the gates at once.
struct CellBuffers {
  at::Tensor pre, state;  // [B, gates * H] pre-activations, [B, H] for the second call
};

void lstm_cell(const float* xp, const float* hp, int64_t batch, int64_t hidden, float* h, float* c, CellBuffers& buf) {
  const int64_t width = 4 * hidden;
  float* pre = buf.pre.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {  // gates i, f, g, o; g doubled for tanh
    for (int64_t gate = 0; gate < 4; ++gate) {
      const float k = gate == 2 ? 2.0f : 1.0f;
      const int64_t at = b * width + gate * hidden;
      for (int64_t j = 0; j < hidden; ++j) pre[at + j] = k * (xp[at + j] + hp[at + j]);
    }
  }
  at::sigmoid_(buf.pre);
  float* twice_c = buf.state.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {
    const float* s = pre + b * width;
    for (int64_t j = 0; j < hidden; ++j) {
      const float g = 2.0f * s[2 * hidden + j] - 1.0f;
      const float cell = s[hidden + j] * c[b * hidden + j] + s[j] * g;
      c[b * hidden + j] = cell;
      twice_c[b * hidden + j] = 2.0f * cell;
    }
  }
  at::sigmoid_(buf.state);
  for (int64_t b = 0; b < batch; ++b) {
    const float* s = pre + b * width;
    for (int64_t j = 0; j < hidden; ++j) h[b * hidden + j] = s[3 * hidden + j] * (2.0f * twice_c[b * hidden + j] - 1.0f);
  }
}

void gru_cell(const float* xp, const float* hp, int64_t batch, int64_t hidden, float* h, CellBuffers& buf) {
  const int64_t width = 3 * hidden;
  float* pre = buf.pre.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {  // gates r, z
    for (int64_t j = 0; j < 2 * hidden; ++j) pre[b * width + j] = xp[b * width + j] + hp[b * width + j];
  }
  at::sigmoid_(buf.pre);  // (the n third is overwritten below)
  float* n = buf.state.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {  // n = tanh(x_n + r * (W_hn h + b_hn)), doubled for tanh
    const int64_t row = b * width;
    for (int64_t j = 0; j < hidden; ++j) {
      n[b * hidden + j] = 2.0f * (xp[row + 2 * hidden + j] + pre[row + j] * hp[row + 2 * hidden + j]);
    }
  }
  at::sigmoid_(buf.state);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < hidden; ++j) {
      const float nj = 2.0f * n[b * hidden + j] - 1.0f, z = pre[b * width + hidden + j];
      h[b * hidden + j] = nj + z * (h[b * hidden + j] - nj);
    }
  }
}

// One layer, one direction over x [T, B, I]: fills its half of out [T, B,
// D * H], updates h (and c for LSTM) [B, H] in place.
void run_direction(Mode mode, const at::Tensor& x, const PackedRnnWeight& w, int64_t layer, int64_t dir,
                   bool per_row, at::Tensor& h, at::Tensor& c, at::Tensor& out) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w.hidden_size();
  const at::Tensor b_ih = w.b_ih(layer, dir), b_hh = w.b_hh(layer, dir);
  const auto opt = [](const at::Tensor& b) { return b.defined() ? std::optional<at::Tensor>(b) : std::nullopt; };
  // Every step's input projection in one GEMM (M = T * B).
  const at::Tensor xp = linear_dynamic(x.reshape({steps * batch, x.size(2)}), w.ih(layer, dir), opt(b_ih), per_row, false);
  const int64_t row = batch * w.gates() * hidden, out_stride = out.size(2);
  float* o = out.data_ptr<float>();
  CellBuffers buf{at::empty({batch, w.gates() * hidden}, x.options()), at::empty({batch, hidden}, x.options())};
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = dir == 0 ? s : steps - 1 - s;
    const at::Tensor hp = linear_dynamic(h, w.hh(layer, dir), opt(b_hh), per_row, false);
    const float* xt = xp.data_ptr<float>() + t * row;
    if (mode == Mode::Lstm) {
      lstm_cell(xt, hp.data_ptr<float>(), batch, hidden, h.data_ptr<float>(), c.data_ptr<float>(), buf);
    } else {
      gru_cell(xt, hp.data_ptr<float>(), batch, hidden, h.data_ptr<float>(), buf);
    }
    const float* hv = h.data_ptr<float>();
    for (int64_t b = 0; b < batch; ++b) {
      std::copy(hv + b * hidden, hv + (b + 1) * hidden, o + (t * batch + b) * out_stride + dir * hidden);
    }
  }
}

// The layers and directions of `w` over input; h0/c0 [cells, B, H] (c0
// undefined for GRU). Returns (output, h_n, c_n).
std::tuple<at::Tensor, at::Tensor, at::Tensor> run(const char* op, const at::Tensor& input, const at::Tensor& h0,
                                                   const at::Tensor& c0, const PackedRnnWeight& w, bool batch_first,
                                                   bool per_row) {
  TORCH_CHECK(input.dim() == 3 && input.scalar_type() == at::kFloat, op,
              ": expected a float32 input [T, B, I] (or [B, T, I] with batch_first); got ", input.scalar_type(),
              " of shape ", input.sizes());
  at::Tensor x = (batch_first ? input.transpose(0, 1) : input).contiguous();
  TORCH_CHECK(x.size(2) == w.input_size(), op, ": input has ", x.size(2), " features, the layer expects ",
              w.input_size());
  const int64_t batch = x.size(1), hidden = w.hidden_size(), dirs = w.directions();
  check_state(op, "h0", h0, w, batch);
  if (c0.defined()) check_state(op, "c0", c0, w, batch);
  at::Tensor h_n = at::empty_like(h0), c_n = c0.defined() ? at::empty_like(c0) : at::Tensor();
  for (int64_t l = 0; l < w.num_layers(); ++l) {
    at::Tensor out = at::empty({x.size(0), batch, dirs * hidden}, x.options());
    for (int64_t d = 0; d < dirs; ++d) {
      const int64_t cell = l * dirs + d;
      // Private copies: the cells update them in place.
      at::Tensor h = h0[cell].clone(at::MemoryFormat::Contiguous);
      at::Tensor c = c0.defined() ? c0[cell].clone(at::MemoryFormat::Contiguous) : at::Tensor();
      if (x.size(0) > 0) run_direction(w.mode(), x, w, l, d, per_row, h, c, out);
      h_n[cell].copy_(h);
      if (c.defined()) c_n[cell].copy_(c);
    }
    x = out;
  }
  if (batch_first) x = x.transpose(0, 1);
  return {x, h_n, c_n};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_dynamic(const at::Tensor& input, const std::vector<at::Tensor>& hx,
                                                            const c10::intrusive_ptr<PackedRnnWeight>& weight,
                                                            bool batch_first, bool per_row) {
  constexpr const char* op = "qext::lstm_dynamic";
  TORCH_CHECK(weight && weight->mode() == Mode::Lstm, op, ": expected LSTM weights");
  TORCH_CHECK(hx.size() == 2, op, ": hx must be (h0, c0); got ", hx.size(), " tensors");
  return run(op, input, hx[0], hx[1], *weight, batch_first, per_row);
}

std::tuple<at::Tensor, at::Tensor> gru_dynamic(const at::Tensor& input, const at::Tensor& hx,
                                               const c10::intrusive_ptr<PackedRnnWeight>& weight, bool batch_first,
                                               bool per_row) {
  constexpr const char* op = "qext::gru_dynamic";
  TORCH_CHECK(weight && weight->mode() == Mode::Gru, op, ": expected GRU weights");
  auto [out, h_n, unused] = run(op, input, hx, at::Tensor(), *weight, batch_first, per_row);
  return {out, h_n};
}

}  // namespace qext::ops
