"""T5: an encoder-decoder Transformer (transformers' ``T5ForConditionalGeneration``), trained from scratch on pairs.

It maps a source text to a target text: code to its docstring's summary line with ``pycode-docstrings``, or
whatever the user's ``.jsonl`` / ``.csv`` pairs hold. Training is teacher-forced cross-entropy on the target
(padding ignored). Generation is greedy, beam search or seeded sampling through transformers' ``generate()``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from transformers import LogitsProcessorList, T5ForConditionalGeneration
from transformers import T5Config as HFT5Config

from genlab.data.pairs import PAD, PairsData, first_line, name_as_sentence
from genlab.data.tokenizers import EOT
from genlab.errors import BadArgument
from genlab.files import atomic_write_bytes
from genlab.modalities.pairs import PairTexts
from genlab.models.base import Family
from genlab.nets import eval_mode, n_params, to_device
from genlab.progress import task
from genlab.sample.text import MAX_NGRAM, check_sampling


@dataclass(frozen=True)
class T5Config:
    """Shape of the network. The vocabulary size comes from the tokenizer."""

    n_layer: int = 2  # encoder blocks
    n_decoder_layer: int = 2  # decoder blocks
    n_head: int = 4  # attention heads per block
    d_model: int = 128  # width of the residual stream
    d_kv: int = 32  # width of each attention head (T5 does not tie it to d_model / n_head)
    d_ff: int = 512  # width of the feed-forward layer
    relative_attention_num_buckets: int = 32  # T5's relative-position buckets (no absolute positions)
    relative_attention_max_distance: int = 128  # distances beyond this share the last bucket
    feed_forward: Literal["gated-gelu", "relu"] = "gated-gelu"  # T5 v1.1's gated GELU, or the original ReLU
    tie_embeddings: bool = True  # share input and output embeddings (original T5; fewer parameters)
    dropout: float = 0.0  # dropout in every block (0.1 helps small data sets)

    limits: ClassVar[dict[str, str]] = {
        "n_layer": "[1, 1024]", "n_decoder_layer": "[1, 1024]", "n_head": "[1, 1024]", "d_model": "[1, 65536]",
        "d_kv": "[1, 65536]", "d_ff": "[1, 1048576]", "relative_attention_num_buckets": "[1, 4096]",
        "relative_attention_max_distance": "[1, 1048576]", "dropout": "[0, 1)"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


class T5(Family):
    name = "t5"
    modality = "pairs"
    data_interface = "token-pairs"
    cites = ("Raffel et al. 2020, "
             "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer (T5)")
    export_hint = "transformers.AutoModelForSeq2SeqLM.from_pretrained('{path}')"
    export_usage = ("from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
                    "tok = AutoTokenizer.from_pretrained('{path}')\nmodel = AutoModelForSeq2SeqLM.from_pretrained('{path}')\n"
                    "ids = tok('def add(a, b): return a + b', return_tensors='pt')\n"
                    "print(tok.decode(model.generate(**ids, num_beams=4)[0], skip_special_tokens=True))")
    Config = T5Config
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 2e-3, "min_lr": 2e-4}  # a from-scratch T5 this small trains well at a higher rate
    example: ClassVar[dict[str, Any]] = {"set": [
        "model.n_layer=1", "model.n_decoder_layer=1", "model.n_head=2", "model.d_model=32", "model.d_kv=16",
        "model.d_ff=64", "data.vocab_size=400", "data.max_source_tokens=64", "data.max_target_tokens=16",
        "train.batch_size=8", "train.warmup_steps=5"]}

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: PairsData, *, seed: int) -> None:
        self.tokenizer_ = data.tokenizer
        self.vocab_size_ = data.vocab_size
        self.pad_id_ = data.pad_id
        self.eos_id_ = int(data.meta["eos_id"])
        self.max_target_tokens_ = int(data.arrays[("train", "target")].shape[1])
        self.max_source_tokens_ = int(data.arrays[("train", "source")].shape[1])
        self.preview_sources_ = [s for s, _ in data.texts("val")[:2]]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = T5ForConditionalGeneration(self.hf_config())
        self.networks_ = {"model": model.train()}

    def hf_config(self) -> HFT5Config:
        c = self.config
        return HFT5Config(
            vocab_size=self.vocab_size_,
            d_model=c.d_model,
            d_kv=c.d_kv,
            d_ff=c.d_ff,
            num_layers=c.n_layer,
            num_decoder_layers=c.n_decoder_layer,
            num_heads=c.n_head,
            relative_attention_num_buckets=c.relative_attention_num_buckets,
            relative_attention_max_distance=c.relative_attention_max_distance,
            dropout_rate=c.dropout,
            feed_forward_proj=c.feed_forward,
            tie_word_embeddings=c.tie_embeddings,
            pad_token_id=self.pad_id_,
            eos_token_id=self.eos_id_,
            decoder_start_token_id=self.pad_id_,
        )

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        arch.pop("dropout")  # dropout changes training, not the weights' shapes or meaning
        return {**arch, "vocab_size": self.vocab_size_}

    @property
    def model_(self) -> T5ForConditionalGeneration:
        return self.networks_["model"]

    # -- training -------------------------------------------------------------------------------------------------
    def _logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) for sources x (B, S) and targets y (B, T)."""
        start = torch.full_like(y[:, :1], self.pad_id_)  # (B, 1) decoder start = <pad>
        decoder_in = torch.cat([start, y[:, :-1]], dim=1)  # (B, T) targets shifted right
        # no decoder mask: attention is causal and padding only follows a target's end, where the loss ignores it
        return self.model_(input_ids=x, attention_mask=(x != self.pad_id_).long(), decoder_input_ids=decoder_in).logits

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch  # (B, S), (B, T)
        logits = self._logits(x, y)  # (B, T, V)
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=self.pad_id_)

    def preview(self, step: int, folder: Path) -> None:
        lines = []
        for src in self.preview_sources_:
            out = self.sample(1, source=src, max_new_tokens=self.max_target_tokens_)[0]
            lines.append(f"{src}\n--> {out}\n")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"step-{step}.txt", "\n".join(lines).encode("utf-8"))

    def evaluate(self, data: PairsData, *, n: int | None = 500, batch_size: int = 32, beams: int = 1,
                 no_repeat_ngram: int = 0) -> dict[str, Any]:
        """BLEU, chrF and exact match of greedy (or beam) outputs on the first ``n`` held-out pairs, beside a baseline.

        The baseline is the function name as a sentence (docstrings) or the source's first line (user pairs).
        """
        from genlab.evaluate.pairs import text_metrics

        if n is not None and n < 1:
            raise BadArgument("n", f"must be at least 1, got {n}")
        if not 1 <= beams <= MAX_BEAMS:
            raise BadArgument("beams", f"must be at least 1, got {beams}" if beams < 1 else
                              f"must be at most {MAX_BEAMS}, got {beams}")
        if not 0 <= no_repeat_ngram <= MAX_NGRAM:
            raise BadArgument("no_repeat_ngram", f"must be 0 (off) or positive, at most {MAX_NGRAM}, got {no_repeat_ngram}")
        pairs = data.texts("val")[: n or None]
        sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
        preds: list[str] = []
        with task(f"decoding {len(sources)} held-out sources", total=len(sources)) as advance:
            for i in range(0, len(sources), batch_size):
                preds += self.sample(1, source=sources[i : i + batch_size], beams=beams,
                                     no_repeat_ngram=no_repeat_ngram, max_new_tokens=self.max_target_tokens_)
                advance(len(sources[i : i + batch_size]))
        guess = name_as_sentence if data.baseline == "name_words" else first_line
        device = next(self.model_.parameters()).device
        batches = [list(range(i, min(len(pairs), i + batch_size))) for i in range(0, len(pairs), batch_size)]
        with eval_mode(self.model_):  # teacher-forced loss without dropout, on the weights' device
            losses = [self.validation_loss(to_device(data.rows("val", rows), device)) for rows in batches]
        return {
            "n_pairs": len(pairs),
            "n_val_pairs": data.n_pairs("val"),
            "val_loss": sum(losses) / max(1, len(losses)),  # mean over batches, teacher-forced, nats per token
            "model": text_metrics(preds, refs),
            "baseline": {"name": data.baseline, **text_metrics([guess(s) for s in sources], refs)},
            "decoding": ("greedy" if beams == 1 else f"beam search, {beams} beams")
            + (f", no repeated {no_repeat_ngram}-grams" if no_repeat_ngram else ""),
            "n_params": n_params(self.model_),
        }

    # -- sampling -------------------------------------------------------------------------------------------------
    def sample(
        self,
        n: int = 1,
        *,
        seed: int | None = None,
        source: str | list[str] = (),
        beams: int = 1,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        max_new_tokens: int = 64,
        no_repeat_ngram: int = 0,
        logits_processor: Any = None,
    ) -> PairTexts:
        """``n`` targets for each source (in order): greedy at temperature 0 with one beam, beam search with
        ``beams`` > 1 (the ``n`` best beams), else sampling, the same seed giving the same text. The global RNG is
        left as it was. ``no_repeat_ngram`` > 0 forbids any n-gram of that many tokens to occur twice in an output
        (transformers' ``no_repeat_ngram_size``; small models otherwise loop: "the given in the given in the").
        ``logits_processor`` (the run's watermark) reshapes each step's logits."""
        sources = [source] if isinstance(source, str) else list(source)
        _check(n, sources, beams, temperature, top_k, top_p, max_new_tokens, no_repeat_ngram)
        sampling = temperature > 0
        if not sampling and n > beams:
            raise BadArgument("n", f"is {n}, but greedy and beam search give at most `beams` ({beams}) outputs per "
                                   "source (raise beams, or sample with a temperature above 0)")
        enc = self.tokenizer_.encode_batch(sources)  # each ends in <|endoftext|>
        ids = [e.ids[: self.max_source_tokens_ - 1] + [self.eos_id_] if len(e.ids) > self.max_source_tokens_
               else e.ids for e in enc]
        width = max(len(r) for r in ids)
        device = next(self.model_.parameters()).device
        x = torch.tensor([r + [self.pad_id_] * (width - len(r)) for r in ids], device=device)  # (B, S)
        kwargs: dict[str, Any] = {"do_sample": sampling, "num_beams": beams, "num_return_sequences": n,
                                  "max_new_tokens": max_new_tokens, "no_repeat_ngram_size": no_repeat_ngram}
        if sampling:
            kwargs.update(temperature=temperature, top_k=top_k or 0, top_p=top_p or 1.0)
        processors = LogitsProcessorList([logits_processor] if logits_processor is not None else [])
        devices = [device.index or 0] if device.type == "cuda" else []
        with eval_mode(self.model_), torch.random.fork_rng(devices=devices):  # generate() samples from the global RNG
            torch.manual_seed(seed if seed is not None else secrets.randbits(63))
            out = self.model_.generate(input_ids=x, attention_mask=(x != self.pad_id_).long(),
                                       logits_processor=processors,
                                       generation_config=self._generation_config(**kwargs))  # (B*n, T)
        return PairTexts([self.tokenizer_.decode(row.tolist(), skip_special_tokens=True) for row in out],
                         sources=sources, n=n)

    def _generation_config(self, **kwargs: Any):
        from transformers import GenerationConfig

        return GenerationConfig(pad_token_id=self.pad_id_, eos_token_id=self.eos_id_,
                                decoder_start_token_id=self.pad_id_, **kwargs)

    # -- saving ---------------------------------------------------------------------------------------------------
    def export(self, folder: Path) -> None:
        """A folder that plain ``AutoModelForSeq2SeqLM`` and ``PreTrainedTokenizerFast`` load."""
        from transformers import PreTrainedTokenizerFast

        model = T5ForConditionalGeneration(self.hf_config())
        model.load_state_dict(self.model_.state_dict())
        model.generation_config = self._generation_config()
        model.save_pretrained(folder)
        tok = PreTrainedTokenizerFast(tokenizer_object=self.tokenizer_, eos_token=EOT, pad_token=PAD)
        tok.model_max_length = self.max_source_tokens_
        tok.save_pretrained(folder)


MAX_BEAMS = 64  # wider beams cost memory (beams x outputs x vocabulary) and no longer improve the text


def _check(n, sources, beams, temperature, top_k, top_p, max_new_tokens, no_repeat_ngram) -> None:
    if not sources:
        raise BadArgument("source", "is missing: give at least one source text to transform")
    check_sampling(n, max_new_tokens, temperature, top_k, top_p, no_repeat_ngram)
    if beams < 1:
        raise BadArgument("beams", f"must be at least 1, got {beams}")
    if beams > MAX_BEAMS:
        raise BadArgument("beams", f"must be at most {MAX_BEAMS}, got {beams}")