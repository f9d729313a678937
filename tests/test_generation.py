"""Answers token for token equal to transformers' generate, alone and in batches."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from pix2struct_onnx.pipeline import DocumentQA, Query, trim_generated
from pix2struct_onnx.sample import draw_sample_document

QUESTIONS = ["What is the total?", "Who is the sender?", "What is the date?", "Invoice number?"]


def pages(font_path) -> list[Image.Image]:
    invoice = draw_sample_document(font_path)
    wide = invoice.resize((1400, 500))
    small = invoice.crop((40, 40, 460, 360))
    grey = invoice.convert("L").convert("RGB").rotate(90, expand=True)
    return [invoice, wide, small, grey]


def reference(model, image_processor, tokenizer, images, questions, font_path, max_new_tokens):
    """transformers' batched generate, one row per (image, question)."""
    inputs = image_processor(images=images, header_text=questions, font_path=str(font_path), return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    eos = model.generation_config.eos_token_id
    ids = [trim_generated(row[1:].numpy(), eos) for row in out]
    return ids, [tokenizer.decode(i, skip_special_tokens=True) for i in ids]


@pytest.fixture(scope="module")
def tokenizer(tiny_hf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_hf)


@pytest.fixture(scope="module")
def eos_model_dirs(tmp_path_factory, tiny_hf, font_path):
    """The tiny model with the EOS logit raised so answers stop at different steps."""
    from transformers import Pix2StructForConditionalGeneration, Pix2StructProcessor

    from pix2struct_onnx.convert_cli import convert

    model = Pix2StructForConditionalGeneration.from_pretrained(tiny_hf).eval()
    weight = model.decoder.lm_head.weight.data
    weight[1] = weight[1] + weight[1].sign() * weight[1].abs().mean()
    hf_dir = tmp_path_factory.mktemp("eos") / "hf"
    model.save_pretrained(hf_dir)
    Pix2StructProcessor.from_pretrained(tiny_hf).save_pretrained(hf_dir)
    onnx_dir = hf_dir.parent / "onnx"
    convert(str(hf_dir), onnx_dir, font=str(font_path))
    return hf_dir, onnx_dir, model


@pytest.mark.parametrize("index", range(4))
def test_single_answers_equal_generate(qa, hf_model, hf_image_processor, tokenizer, font_path, index):
    image, question = pages(font_path)[index], QUESTIONS[index]
    ids, texts = reference(hf_model, hf_image_processor, tokenizer, [image], [question], font_path, 19)
    answer = qa.answer(image, question, max_new_tokens=19)
    assert answer.token_ids == ids[0]
    assert answer.answer == texts[0]


def test_batched_answers_equal_generate_and_single(qa, hf_model, hf_image_processor, tokenizer, font_path):
    images = pages(font_path)
    ids, texts = reference(hf_model, hf_image_processor, tokenizer, images, QUESTIONS, font_path, 12)
    batched = qa.answer_batch([Query(i, q) for i, q in zip(images, QUESTIONS)], max_new_tokens=12)
    assert [a.token_ids for a in batched] == ids
    assert [a.answer for a in batched] == texts
    singles = [qa.answer(i, q, max_new_tokens=12).token_ids for i, q in zip(images, QUESTIONS)]
    assert singles == ids


def test_answers_stop_at_eos_like_generate(eos_model_dirs, hf_image_processor, tokenizer, font_path):
    _, onnx_dir, model = eos_model_dirs
    images = [draw_sample_document(font_path)] * 4
    ids, texts = reference(model, hf_image_processor, tokenizer, images, QUESTIONS, font_path, 19)
    lengths = sorted(len(i) for i in ids)
    assert lengths[0] < lengths[-1], "fixture should make answers of different lengths"
    assert any(i[-1] == 1 for i in ids), "fixture should make some answers end with EOS"
    qa = DocumentQA(onnx_dir)
    batched = qa.answer_batch([Query(i, q) for i, q in zip(images, QUESTIONS)], max_new_tokens=19)
    assert [a.token_ids for a in batched] == ids
    assert [a.answer for a in batched] == texts
    for answer, expected in zip(batched, ids):
        assert qa.answer(images[0], answer.question, max_new_tokens=19).token_ids == expected


def test_min_new_tokens_forces_length_like_generate(eos_model_dirs, hf_image_processor, tokenizer, font_path):
    _, onnx_dir, model = eos_model_dirs
    image = draw_sample_document(font_path)
    inputs = hf_image_processor(images=[image], header_text=[QUESTIONS[1]], font_path=str(font_path),
                                return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=15, min_new_tokens=15, do_sample=False)
    answer = DocumentQA(onnx_dir).answer_batch([Query(image, QUESTIONS[1])], max_new_tokens=15,
                                               min_new_tokens=15)[0]
    assert answer.num_tokens == 15
    assert answer.token_ids == out[0, 1:].tolist()


def test_max_new_tokens_is_respected_and_capped(qa, font_path):
    image = draw_sample_document(font_path)
    assert qa.answer(image, "Total?", max_new_tokens=3).num_tokens <= 3
    from pix2struct_onnx.decoding import greedy_decode
    from pix2struct_onnx.folder import MAX_NEW_TOKENS_CAP
    from pix2struct_onnx.preprocessing import stack_patches

    patches = stack_patches([qa.preprocess(Query(image, "Total?"))])
    cross = qa.sessions.encode(patches.flattened_patches, patches.attention_mask)
    result = greedy_decode(qa.sessions, cross, patches.attention_mask, qa.config.generation,
                           max_new_tokens=10**9)
    assert result.tokens.shape[1] <= MAX_NEW_TOKENS_CAP


def test_tokenizer_cleanup_matches_transformers():
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    from pix2struct_onnx.tokenizer import clean_up_tokenization

    for text in ["it is 5 . ok ?", "don 't , won n't", "I 'm here ! we 're 've 's", "plain text"]:
        assert clean_up_tokenization(text) == PreTrainedTokenizerBase.clean_up_tokenization(text)

