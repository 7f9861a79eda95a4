"""BERT: a bidirectional Transformer encoder (transformers' ``BertForMaskedLM``), trained from scratch as a
masked language model on any text corpus, with a character or byte-level BPE tokenizer.

It does not generate text: it fills in ``[MASK]``s (``fill``) and turns texts into vectors (``embed``).

Special tokens. The run's tokenizer is the one every text family trains (``data/tokenizers.py``, unchanged);
``BERT.prepare_data`` then appends ``[MASK]`` and ``[PAD]`` as added special tokens (ids after the last learned
one), so the token files are identical to a GPT run's and GPT's tokenizers are untouched. With BPE, ``[MASK]``
swallows the space before it (as RoBERTa's does): "the [MASK] sat" masks the token " cat".

Masking follows BERT: ``mask_prob`` of the tokens are chosen; of those 80% become ``[MASK]``, 10% a random token,
10% stay; the loss is the cross-entropy at the chosen positions only. Each batch's mask is drawn from a private
``torch.Generator`` seeded by ``train.seed`` and a hash of the batch's tokens, so masking never touches the global
RNG, validation batches always get the same masks, and a resumed run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import AddedToken, Tokenizer
from transformers import BertConfig, BertForMaskedLM
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from genlab.data.tokens import TextData, TextDataConfig
from genlab.errors import BadArgument, GenlabError
from genlab.files import atomic_write_bytes
from genlab.models.base import Family
from genlab.models.gpt import (
    TRAIN_ATTENTION,  # importing gpt registers the CPU-friendly attention
)
from genlab.nets import eval_mode, n_params

# transformers builds padding masks only for attention it knows; the genlab attention is SDPA, so it takes SDPA's
# masks (without this, embed()'s padding mask would be dropped). Inputs with no padding still get no mask at all.
AttentionMaskInterface.register(TRAIN_ATTENTION, sdpa_mask)

MASK = "[MASK]"  # the token fill() predicts and training hides tokens behind
PAD = "[PAD]"  # fills short texts up to the longest of a batch in embed()
IGNORE = -100  # label of positions that carry no loss


@dataclass(frozen=True)
class BERTConfig:
    """Shape of the encoder and the masking rule. The vocabulary size comes from the tokenizer."""

    n_layer: int = 4  # Transformer blocks
    n_head: int = 4  # attention heads per block (n_embd must divide by it)
    n_embd: int = 128  # width of the hidden states (and of embed()'s vectors)
    intermediate_size: int = 0  # width of each block's MLP (0 = 4 * n_embd, as in BERT)
    block_size: int = 64  # context length in tokens (training examples; longest text fill/embed take)
    dropout: float = 0.0  # dropout on embeddings, attention and hidden states (BERT used 0.1)
    activation: Literal["gelu", "gelu_pytorch_tanh", "relu"] = "gelu"  # MLP activation; gelu is BERT's
    mask_prob: float = 0.15  # share of tokens chosen for prediction in each training example
    mask_token_frac: float = 0.8  # of the chosen tokens: share replaced by [MASK]
    random_token_frac: float = 0.1  # of the chosen tokens: share replaced by a random token (the rest stay)

    limits: ClassVar[dict[str, str]] = {"n_layer": "[1, 1024]", "n_head": "[1, 1024]", "n_embd": "[1, 65536]",
                                        "intermediate_size": "[0, 1048576]", "block_size": "[1, 1048576]",
                                        "dropout": "[0, 1)", "mask_prob": "(0, 1)", "mask_token_frac": "[0, 1]",
                                        "random_token_frac": "[0, 1]"}

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"model.n_embd ({self.n_embd}) must be a multiple of model.n_head ({self.n_head})")
        if self.mask_token_frac + self.random_token_frac > 1:
            raise ValueError("model.mask_token_frac + model.random_token_frac must be at most 1")


def add_special_tokens(tok: Tokenizer, *, bpe: bool) -> None:
    """Append [MASK] and [PAD] to a trained tokenizer (in place); learned ids do not move."""
    for t in (MASK, PAD):
        assert tok.token_to_id(t) is None, f"{t} cannot be a learned token"  # char: 1 char; BPE splits brackets
    tok.add_special_tokens([AddedToken(MASK, special=True, lstrip=bpe), AddedToken(PAD, special=True)])


def batch_generator(x: torch.Tensor, seed: int) -> torch.Generator:
    """A private generator for one batch: seeded by the run's seed and the batch's tokens."""
    digest = hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=8, key=str(seed).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def mask_tokens(x: torch.Tensor, *, mask_id: int, n_regular: int, mask_prob: float, mask_frac: float,
                random_frac: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of x (B, T): inputs (B, T) and labels (B, T), IGNORE where no token was chosen.

    Draws on the CPU from ``generator`` only, a fixed number of draws per batch; at least one token is chosen.
    """
    B, T = x.shape
    chosen = torch.rand((B, T), generator=generator) < mask_prob  # (B, T)
    first = int(torch.randint(B * T, (1,), generator=generator))
    if not chosen.any():
        chosen.view(-1)[first] = True
    roll = torch.rand((B, T), generator=generator)  # (B, T) which corruption each chosen token gets
    random_ids = torch.randint(n_regular, (B, T), generator=generator)  # (B, T) never a special token
    chosen, roll, random_ids = chosen.to(x.device), roll.to(x.device), random_ids.to(x.device)
    inputs = torch.where(chosen & (roll < mask_frac), torch.full_like(x, mask_id), x)
    inputs = torch.where(chosen & (roll >= mask_frac) & (roll < mask_frac + random_frac), random_ids, inputs)
    labels = torch.where(chosen, x, torch.full_like(x, IGNORE))
    return inputs, labels


class BERT(Family):
    name = "bert"
    modality = "text"
    data_interface = "tokens"
    cites = "Devlin et al. 2019, BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
    hints = ("genlab fill {run} 'To be or not to [MASK]'",)  # commands that work on any of its runs
    export_hint = "transformers.AutoModelForMaskedLM.from_pretrained('{path}')"
    export_usage = ("from transformers import pipeline\n\nfill = pipeline('fill-mask', model='{path}')\n"
                    "print(fill('To be or not to [MASK]'))")
    Config = BERTConfig
    generates: ClassVar[bool] = False  # fills masks and embeds; `sample` is refused
    example: ClassVar[dict[str, Any]] = {"set": ["model.n_layer=1", "model.n_head=2", "model.n_embd=32",
                                                 "model.block_size=32", "train.batch_size=8", "train.lr=3e-3",
                                                 "train.warmup_steps=5"]}

    # -- data -----------------------------------------------------------------------------------------------------
    @classmethod
    def prepare_data(cls, source: Any, data_config: TextDataConfig, folder: Path, *, modality: str | None = None
                     ) -> TextData:
        data = super().prepare_data(source, data_config, folder, modality=modality)
        add_special_tokens(data.tokenizer, bpe=getattr(data_config, "tokenizer", None) == "bpe")
        meta = {**data.meta, "vocab_size": data.tokenizer.get_vocab_size(), "special_tokens": [MASK, PAD]}
        atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())
        return type(data)(data.tokenizer, folder)  # the modality's own data (text, music), now with [MASK]

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: TextData, *, seed: int) -> None:
        data.block_size = self.config.block_size
        data.check_block(self.config.block_size)
        self.tokenizer_ = data.tokenizer
        self.vocab_size_ = data.tokenizer.get_vocab_size()
        self.mask_id_ = data.tokenizer.token_to_id(MASK)
        self.pad_id_ = data.tokenizer.token_to_id(PAD)
        if self.mask_id_ is None or self.pad_id_ is None:
            raise GenlabError(f"{data.folder}: the tokenizer has no {MASK}; this data was not prepared for bert")
        self.n_regular_ = min(self.mask_id_, self.pad_id_)  # learned tokens come first
        self.seed_ = seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertForMaskedLM(self.hf_config(attn=TRAIN_ATTENTION))  # weights drawn as BERT does
        self.networks_ = {"model": model.train()}

    def hf_config(self, *, attn: str = "sdpa") -> BertConfig:
        c = self.config
        return BertConfig(
            vocab_size=self.vocab_size_,
            hidden_size=c.n_embd,
            num_hidden_layers=c.n_layer,
            num_attention_heads=c.n_head,
            intermediate_size=c.intermediate_size or 4 * c.n_embd,
            hidden_act=c.activation,
            hidden_dropout_prob=c.dropout,
            attention_probs_dropout_prob=c.dropout,
            max_position_embeddings=c.block_size,
            type_vocab_size=1,  # one segment: no next-sentence pairs
            pad_token_id=self.pad_id_,
            attn_implementation=attn,
        )

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        for k in ("dropout", "mask_prob", "mask_token_frac", "random_token_frac"):
            arch.pop(k)  # they change training, not the weights' shapes or meaning
        return {**arch, "vocab_size": self.vocab_size_}

    @property
    def model_(self) -> BertForMaskedLM:
        return self.networks_["model"]

    def _score(self, x: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor],
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (M, V) at positions ``where`` of x (B, T); the vocabulary projection runs only there."""
        device = next(self.model_.parameters()).device
        hidden = self.model_.bert(input_ids=x.to(device), attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        return self.model_.cls(hidden[where[0].to(device), where[1].to(device)])  # (M, V)

    # -- training -------------------------------------------------------------------------------------------------
    def corrupt(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's masked inputs (B, T) and labels (B, T), from its own seeded generator."""
        c = self.config
        return mask_tokens(x, mask_id=self.mask_id_, n_regular=self.n_regular_, mask_prob=c.mask_prob,
                           mask_frac=c.mask_token_frac, random_frac=c.random_token_frac,
                           generator=batch_generator(x, self.seed_))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, _ = batch  # (B, T); the next-token targets are not used
        inputs, labels = self.corrupt(x)
        where = (labels != IGNORE).nonzero(as_tuple=True)  # (M,), (M,)
        logits = self._score(inputs, where)  # (M, V)
        return F.cross_entropy(logits.float(), labels[where])

    def evaluate(self, data: TextData, *, max_tokens: int = 0, batch_size: int = 16,
                 pppl_tokens: int = 512) -> dict[str, Any]:
        """Masked-token accuracy and loss beside the unigram guess, and pseudo-perplexity on ``pppl_tokens``."""
        from genlab.evaluate.mlm import masked_accuracy, pseudo_perplexity
        from genlab.evaluate.text import unigram_entropy

        with eval_mode(self.model_):
            report: dict[str, Any] = masked_accuracy(self._score, data, mask_id=self.mask_id_,
                                                     mask_prob=self.config.mask_prob, batch_size=batch_size,
                                                     max_tokens=max_tokens)
            report.update(pseudo_perplexity(self._score, data, mask_id=self.mask_id_, max_tokens=pppl_tokens))
        return {**report, "unigram_entropy": unigram_entropy(data), "n_params": n_params(self.model_)}

    # -- using the model ------------------------------------------------------------------------------------------
    def sample(self, n: int = 1, **kwargs: Any) -> Any:
        raise GenlabError("bert does not generate text; fill masks with `genlab fill RUN \"text with [MASK]\"`")

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer_.encode(text).ids
        if len(ids) > self.config.block_size:
            raise GenlabError(f"the text is {len(ids)} tokens, longer than the model's context of "
                              f"{self.config.block_size}; shorten it")
        return ids

    @torch.no_grad()
    def fill(self, text: str, *, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each ``[MASK]`` in ``text``, in order: the ``top_k`` most likely tokens and their probabilities."""
        if top_k < 1:
            raise BadArgument("top_k", f"must be at least 1, got {top_k}")
        if MASK not in text:
            raise GenlabError(f"the text has no {MASK}; write {MASK} where a token is missing")
        if not text.replace(MASK, "").strip():
            raise GenlabError(f"the text is only {MASK}s; give some context around them")
        x = torch.tensor([self.encode(text)])  # (1, T)
        where = (x == self.mask_id_).nonzero(as_tuple=True)  # (M,), (M,)
        with eval_mode(self.model_):
            logits = self._score(x, where).float().cpu()  # (M, V)
        logits[:, [self.mask_id_, self.pad_id_]] = float("-inf")  # never a filler
        probs = logits.softmax(-1)  # (M, V)
        top = probs.topk(min(top_k, self.n_regular_), dim=-1)
        return [[(self.tokenizer_.decode([i], skip_special_tokens=False), float(p)) for p, i in
                 zip(ps.tolist(), ids.tolist())] for ps, ids in zip(top.values, top.indices)]

    @torch.no_grad()
    def embed(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        """One vector per text (N, n_embd): the mean of the last hidden states over its tokens.

        A text longer than the context is cut to its first ``block_size`` tokens; an empty text is refused.
        """
        rows = []
        for i, text in enumerate(texts):
            ids = self.tokenizer_.encode(text).ids[: self.config.block_size]
            if not ids:
                raise GenlabError(f"text {i + 1} is empty; there is nothing to embed")
            rows.append(ids)
        device = next(self.model_.parameters()).device
        out = np.zeros((len(rows), self.config.n_embd), dtype=np.float32)
        with eval_mode(self.model_):
            for b0 in range(0, len(rows), batch_size):
                chunk = rows[b0 : b0 + batch_size]
                T = max(len(r) for r in chunk)
                x = torch.tensor([r + [self.pad_id_] * (T - len(r)) for r in chunk], device=device)  # (B, T)
                keep = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in chunk], device=device)  # (B, T)
                hidden = self.model_.bert(input_ids=x, attention_mask=keep).last_hidden_state.float()  # (B, T, H)
                pooled = (hidden * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)  # (B, H)
                out[b0 : b0 + len(chunk)] = pooled.cpu().numpy()
        return out

    # -- saving ---------------------------------------------------------------------------------------------------
    def export(self, folder: Path) -> None:
        """A folder that plain ``AutoModelForMaskedLM`` and ``PreTrainedTokenizerFast`` load."""
        from transformers import PreTrainedTokenizerFast

        model = BertForMaskedLM(self.hf_config())
        model.load_state_dict(self.model_.state_dict())
        model.save_pretrained(folder)
        tok = PreTrainedTokenizerFast(tokenizer_object=self.tokenizer_, mask_token=MASK, pad_token=PAD,
                                      eos_token="<|endoftext|>")
        tok.model_max_length = self.config.block_size
        tok.save_pretrained(folder)
