"""Build Pix2Struct checkpoints with random weights, saved in Hugging Face format.

Used where the real weights cannot be downloaded: the test suite (a tiny model) and benchmarks
(the full-size architecture of google/pix2struct-docvqa-base, same parameter count and compute).
The tokenizer is a small SentencePiece-style Unigram model trained here on a built-in corpus,
so nothing is fetched from the network. Requires the export extras (torch, transformers).
"""

from __future__ import annotations

from pathlib import Path

# Published configuration of google/pix2struct-docvqa-base (config.json on the Hub).
FULL_SIZE = {
    "text": dict(
        vocab_size=50244, hidden_size=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        dense_act_fn="gelu_new", layer_norm_epsilon=1e-6, tie_word_embeddings=False,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    ),
    "vision": dict(
        hidden_size=768, patch_embed_hidden_size=768, d_ff=2048, num_hidden_layers=12,
        num_attention_heads=12, d_kv=64, patch_size=16, seq_len=4096, dense_act_fn="gelu_new",
        layer_norm_eps=1e-6,
    ),
    "max_patches": 2048,
}

# google/pix2struct-docvqa-large: 1.34 B parameters; its graphs need ONNX external data.
LARGE = {
    "text": dict(FULL_SIZE["text"], hidden_size=1536, d_ff=3968, num_layers=18, num_heads=24),
    "vision": dict(FULL_SIZE["vision"], hidden_size=1536, patch_embed_hidden_size=768, d_ff=3968,
                   num_hidden_layers=18, num_attention_heads=24),
    "max_patches": 4096,
}

# Same architecture, tiny sizes: the test suite's model.
TINY = {
    "text": dict(FULL_SIZE["text"], vocab_size=0, hidden_size=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4),
    "vision": dict(FULL_SIZE["vision"], hidden_size=32, d_ff=64, num_hidden_layers=2, num_attention_heads=4,
                   d_kv=8),
    "max_patches": 256,
}

_CORPUS = """
What is the invoice number? What is the total amount due? Who is the sender of this letter?
What is the date of the report? Which company issued the document? What is the title?
Invoice number 4821, total 1,250.00 dollars, due on March 3, 2021. Payment terms: net 30 days.
The quarterly report shows revenue of 12.5 million and expenses of 9.1 million.
Dear Sir, please find enclosed the signed contract. Yours sincerely, the research department.
Table 1: results by region. North 45%, South 30%, East 15%, West 10%. Page 3 of 12.
Memorandum to all staff regarding the annual meeting on Friday at 10 a.m. in room 204.
""".strip()


def train_tokenizer(vocab_size: int = 300):
    """Train a small Unigram tokenizer shaped like T5's (Metaspace, <pad>=0, </s>=1, <unk>=2)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace("  ", " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
        show_progress=False,
    )
    lines = _CORPUS.splitlines() * 4
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return tokenizer


def build_random_model(output_dir: str | Path, size: str = "tiny", seed: int = 0,
                       max_patches: int | None = None) -> Path:
    """Write a random-weight Pix2Struct-DocVQA checkpoint (model, tokenizer, processor) to a folder.

    size: "tiny" (tests), "full" (the base model's architecture) or "large".
    """
    import torch
    from transformers import (
        Pix2StructConfig, Pix2StructForConditionalGeneration, Pix2StructImageProcessor,
        Pix2StructProcessor, T5TokenizerFast,
    )

    spec = {"tiny": TINY, "full": FULL_SIZE, "large": LARGE}[size]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    raw = train_tokenizer()
    tokenizer = T5TokenizerFast(tokenizer_object=raw, eos_token="</s>", unk_token="<unk>",
                                pad_token="<pad>", extra_ids=0)
    text = dict(spec["text"])
    if size == "tiny":
        text["vocab_size"] = raw.get_vocab_size()
    # A full-size model keeps the published vocabulary size (50244) so its weights and compute are
    # those of the real model; ids beyond the small tokenizer's vocabulary decode to nothing.
    config = Pix2StructConfig(text_config=text, vision_config=dict(spec["vision"]), is_vqa=True,
                              decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    model = Pix2StructForConditionalGeneration(config).eval()
    with torch.no_grad():  # trained checkpoints have no unit norm weights; neither should this one
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.mul_(1.0 + 0.1 * torch.randn_like(parameter))
    model.generation_config.decoder_start_token_id = 0
    model.generation_config.eos_token_id = 1
    model.generation_config.pad_token_id = 0
    model.save_pretrained(output_dir)

    image_processor = Pix2StructImageProcessor(
        is_vqa=True, max_patches=max_patches or spec["max_patches"])
    Pix2StructProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(output_dir)
    return output_dir
