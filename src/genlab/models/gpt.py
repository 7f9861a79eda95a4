"""GPT: a decoder-only Transformer language model (transformers' GPT-2 architecture), trained from scratch.

Works on any text corpus with a character or byte-level BPE tokenizer. Defaults are nanoGPT's CPU-sized "baby"
model; the shipped config ``shakespeare-char`` holds the 10.7 M-parameter shakespeare_char shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, GPT2Config, GPT2LMHeadModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from genlab.data.tokenizers import eot_id
from genlab.data.tokens import TextData
from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes
from genlab.modalities.text import Texts
from genlab.models.base import Family
from genlab.nets import eval_mode, n_params
from genlab.sample.text import check_sampling, generate_ids


def _sdpa_fp32_on_cpu(module, query, key, value, attention_mask, **kwargs):
    """SDPA with the attention itself in fp32 when autocast hands it bf16 on a CPU.

    Measured on an AMX CPU (torch 2.13): bf16 fused attention is about 4x slower than fp32 at head size 32, which
    made bf16 training of a small model slower than fp32; keeping attention in fp32 and the matrix products
    around it in bf16 made it 1.3x faster than fp32. On CUDA, bf16 attention is fast and is left alone.
    """
    if query.device.type == "cpu" and query.dtype == torch.bfloat16:
        with torch.autocast("cpu", enabled=False):
            out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(),
                                                  attention_mask, **kwargs)
        return out.to(torch.bfloat16), weights
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register("genlab_sdpa", _sdpa_fp32_on_cpu)
TRAIN_ATTENTION = "genlab_sdpa"  # export writes plain "sdpa", so exported folders need no genlab


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the network. The vocabulary size comes from the tokenizer."""

    n_layer: int = 4  # Transformer blocks
    n_head: int = 4  # attention heads per block (n_embd must divide by it)
    n_embd: int = 128  # width of the residual stream
    block_size: int = 64  # context length in tokens (training examples and the sampling window)
    dropout: float = 0.0  # dropout on embeddings, attention and residuals (0.2 helps small corpora)
    activation: Literal["gelu_pytorch_tanh", "gelu_new", "gelu", "relu"] = "gelu_pytorch_tanh"  # MLP activation; gelu_new is GPT-2's original, slower on CPU

    limits: ClassVar[dict[str, str]] = {"n_layer": "[1, 1024]", "n_head": "[1, 1024]", "n_embd": "[1, 65536]",
                                        "block_size": "[1, 1048576]", "dropout": "[0, 1)"}

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"model.n_embd ({self.n_embd}) must be a multiple of model.n_head ({self.n_head})")


class GPT(Family):
    name = "gpt"
    modality = "text"
    data_interface = "tokens"
    cites = "Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2)"
    export_hint = "transformers.AutoModelForCausalLM.from_pretrained('{path}')"
    export_usage = ("from transformers import pipeline\n\ngenerate = pipeline('text-generation', model='{path}')\n"
                    "# prompt and new tokens together fit the model's context (tokenizer.model_max_length)\n"
                    "print(generate('ROMEO:', max_new_tokens=40)[0]['generated_text'])")
    Config = GPTConfig
    example = {"set": ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=32",
                       "train.batch_size=8", "train.lr=3e-3", "train.warmup_steps=5"]}

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: TextData, *, seed: int) -> None:
        data.block_size = self.config.block_size
        data.check_block(self.config.block_size)
        self.tokenizer_ = data.tokenizer
        self.vocab_size_ = data.vocab_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = GPT2LMHeadModel(self.hf_config(attn=TRAIN_ATTENTION))  # weights drawn as GPT-2 does (N(0, 0.02), scaled c_proj)
        self.networks_ = {"model": model.train()}

    def hf_config(self, *, attn: str = "sdpa") -> GPT2Config:
        c, eot = self.config, eot_id(self.tokenizer_)
        return GPT2Config(
            vocab_size=self.vocab_size_,
            n_positions=c.block_size,
            n_embd=c.n_embd,
            n_layer=c.n_layer,
            n_head=c.n_head,
            activation_function=c.activation,
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            bos_token_id=eot,
            eos_token_id=eot,
            attn_implementation=attn,
        )

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        arch.pop("dropout")  # dropout changes training, not the weights' shapes or meaning
        return {**arch, "vocab_size": self.vocab_size_}

    @property
    def model_(self) -> GPT2LMHeadModel:
        return self.networks_["model"]

    # -- training -------------------------------------------------------------------------------------------------
    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch  # (B, T), (B, T)
        logits = self.model_(input_ids=x).logits  # (B, T, V)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))

    def preview(self, step: int, folder: Path) -> None:
        text = self.sample(1, max_new_tokens=200, seed=step)[0]
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"step-{step}.txt", text.encode("utf-8"))

    def evaluate(self, data: TextData, *, max_tokens: int = 0, batch_size: int = 16) -> dict[str, float]:
        """Validation loss, perplexity and bits per character, beside the unigram baseline."""
        from genlab.evaluate.text import evaluate_lm, unigram_entropy

        report = evaluate_lm(self.model_, data, batch_size=batch_size, max_tokens=max_tokens)
        return {**report, "unigram_entropy": unigram_entropy(data), "n_params": n_params(self.model_)}

    # -- sampling -------------------------------------------------------------------------------------------------
    def causal_lm(self) -> GPT2LMHeadModel:
        """The network that generates, for a decoder outside ``sample`` (the server's continuous batch)."""
        return self.model_

    def encode_prompt(self, prompt: str) -> list[int]:
        ids = self.tokenizer_.encode(prompt).ids if prompt else [eot_id(self.tokenizer_)]
        if len(ids) > self.config.block_size:
            raise GenlabError(
                f"the prompt is {len(ids)} tokens, longer than the model's context of {self.config.block_size}; "
                "shorten it"
            )
        return ids

    def sample(
        self,
        n: int = 1,
        *,
        seed: int | None = None,
        prompt: str = "",
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        on_text: Any = None,
        logits_processor: Any = None,
        stop: Any = None,
    ) -> Texts:
        """Generate ``n`` continuations of ``prompt``; the same seed gives the same text.

        ``on_text(piece)`` receives the first continuation as it is generated (for streaming);
        ``logits_processor(ids, logits)`` may reshape each step's logits (the run's watermark does);
        ``stop(chosen)`` ends a row before the token it marks (music stops after its bars).
        """
        check_sampling(n, max_new_tokens, temperature, top_k, top_p)
        stream = _Streamer(self.tokenizer_, on_text) if on_text else None
        with eval_mode(self.model_):
            ids = generate_ids(
                self.model_,
                self.encode_prompt(prompt),
                n=n,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
                stop_id=eot_id(self.tokenizer_),
                on_token=stream.push if stream else None,
                logits_processor=logits_processor,
                stop=stop,
            )
        return Texts([self.tokenizer_.decode(row) for row in ids], prompt=prompt)

    # -- saving ---------------------------------------------------------------------------------------------------
    def export(self, folder: Path) -> None:
        """A folder that plain ``AutoModelForCausalLM`` and ``PreTrainedTokenizerFast`` load.

        Its generation config stops at the model's context (``block_size`` tokens, prompt included): GPT-2's
        learned positions end there, and transformers' ``generate()`` cannot slide the window as genlab does, so
        a longer request would fail inside the model.
        """
        from transformers import GenerationConfig, PreTrainedTokenizerFast

        model = GPT2LMHeadModel(self.hf_config())
        model.load_state_dict(self.model_.state_dict())
        eot_token = eot_id(self.tokenizer_)
        model.generation_config = GenerationConfig(max_length=self.config.block_size, bos_token_id=eot_token,
                                                   eos_token_id=eot_token, pad_token_id=eot_token, do_sample=True,
                                                   temperature=0.8)
        model.save_pretrained(folder)
        eot = "<|endoftext|>"
        tok = PreTrainedTokenizerFast(tokenizer_object=self.tokenizer_, bos_token=eot, eos_token=eot)
        tok.model_max_length = self.config.block_size
        tok.save_pretrained(folder)


class _Streamer:
    """Turns token ids into text pieces as they come; a byte-level token may end inside a UTF-8 character."""

    def __init__(self, tokenizer, on_text) -> None:
        self.tok, self.on_text, self.ids, self.sent = tokenizer, on_text, [], 0

    def push(self, token: int) -> None:
        self.ids.append(token)
        text = self.tok.decode(self.ids)
        if text.endswith("\ufffd"):  # incomplete character: wait for the next token
            return
        if len(text) > self.sent:
            self.on_text(text[self.sent :])
            self.sent = len(text)
