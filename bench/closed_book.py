"""Closed-book throughput: odqa's length-sorted batched beam search against one question at a
time through plain ``generate``.

Both sides answer the same NQ-open dev questions with the same randomly initialised model of
t5-small's shape (d_model 512, 6 + 6 layers, 8 heads, d_ff 2048, vocabulary 32128) and the same
decoding settings (8 beams, every beam returned, 32 new tokens, ``length_penalty=0``), on the same
number of threads. Random weights practically never emit end-of-sequence, so every beam runs the
full 32 steps on both sides: the same work per question. The tokenizer is a Unigram vocabulary of
the dev questions' words (about one token per word, close to T5's own). The questions are split
into chunks of ``--batch-size``; each chunk is timed both ways back to back so that load from
other processes hits both sides alike. The batched answers are checked against the one-by-one
answers. CPU time is reported beside wall time: on a machine shared with other work it is the
steadier measure of the work each side does.

    python bench/closed_book.py [--questions 64] [--batch-size 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NQ_DEV = DATA / "nq-open" / "NQ-open.dev.jsonl"
T5_SMALL = dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, vocab_size=32128)


def nq_questions(limit: int) -> list[str]:
    """The first ``limit`` NQ-open dev questions."""
    with NQ_DEV.open(encoding="utf-8") as handle:
        return [json.loads(line)["question"] for _, line in zip(range(limit), handle)]


def word_vocab(texts: list[str]) -> list[tuple[str, float]]:
    """Unigram pieces: T5's three specials, '▁word' for every word seen, then single characters."""
    words = sorted({w for t in texts for w in re.findall(r"\S+", t)})
    chars = sorted({c for t in texts for c in t if not c.isspace()})
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -5.0) for w in words] + [(c, -10.0) for c in chars]
    seen: set[str] = set()
    return [(p, s) for p, s in pieces if not (p in seen or seen.add(p))]


def save_random_t5(folder: Path, texts: list[str]) -> str:
    """A randomly initialised T5ForConditionalGeneration of t5-small's shape with a tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    T5Tokenizer(vocab=word_vocab(texts), extra_ids=0).save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **T5_SMALL)
    T5ForConditionalGeneration(config).eval().save_pretrained(folder)
    return str(folder)


def one_at_a_time(model, tokenizer, questions: list[str], beams: int, new_tokens: int) -> list:
    """Plain ``generate`` per question; returns the top answer text of each."""
    import torch

    tops = []
    for question in questions:
        with torch.inference_mode():
            out = model.generate(
                **tokenizer(question, return_tensors="pt"),
                num_beams=beams,
                num_return_sequences=beams,
                max_new_tokens=new_tokens,
                length_penalty=0.0,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
            )
        tops.append(tokenizer.decode(out.sequences[0], skip_special_tokens=True).strip())
    return tops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-beams", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from odqa import GenerationParams, Seq2SeqReader

    torch.set_num_threads(args.threads)
    questions = nq_questions(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_random_t5(Path(tmp), nq_questions(10_000))
        params = GenerationParams(
            num_beams=args.num_beams,
            max_new_tokens=args.max_new_tokens,
            top=1,
            batch_size=args.batch_size,
        )
        reader = Seq2SeqReader(folder, params, device="cpu")
        reader.warm_up()
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    lengths = [len(x) for x in reader.encode(questions)]
    print(
        f"{len(questions)} NQ-open dev questions ({sum(lengths) / len(lengths):.1f} tokens on "
        f"average), random t5-small-shaped model, {args.num_beams} beams, "
        f"{args.max_new_tokens} new tokens, batch size {args.batch_size}, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    reader.answer(questions[:2])
    one_at_a_time(model, tokenizer, questions[:1], args.num_beams, args.max_new_tokens)

    batched_s = single_s = batched_cpu = single_cpu = 0.0
    batched_top: list[str] = []
    single_top: list[str] = []
    for start in range(0, len(questions), args.batch_size):
        chunk = questions[start : start + args.batch_size]
        began, cpu = time.perf_counter(), time.process_time()
        batched_top += [beams[0].text for beams in reader.generate(chunk)]
        batched_s += time.perf_counter() - began
        batched_cpu += time.process_time() - cpu
        began, cpu = time.perf_counter(), time.process_time()
        single_top += one_at_a_time(model, tokenizer, chunk, args.num_beams, args.max_new_tokens)
        single_s += time.perf_counter() - began
        single_cpu += time.process_time() - cpu
        print(f"  {start + len(chunk)}/{len(questions)} questions", file=sys.stderr)

    same = sum(a == b for a, b in zip(batched_top, single_top))
    n = len(questions)
    for name, wall, cpu in (
        ("one at a time, plain generate", single_s, single_cpu),
        ("odqa batched", batched_s, batched_cpu),
    ):
        print(f"{name:30s} {n / wall:6.2f} questions/s ({wall:.1f} s wall, {cpu:.1f} s CPU)")
    print(
        f"speed-up: {single_s / batched_s:.2f}x wall, {single_cpu / batched_cpu:.2f}x CPU time; "
        f"same top answer: {same}/{n}"
    )


if __name__ == "__main__":
    main()
