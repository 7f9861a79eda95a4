"""LoRA: a trained ``gpt`` run tuned to a person's own writing with low-rank adapters (``peft``), or fully.

The parent run (``genlab.train("lora", data, parent=RUN)``) is read, never written: its GPT-2 is copied and the copy
wrapped with peft's LoRA (Hu et al. 2021): each targeted weight W becomes W + (alpha / rank) B A, with A and B small
and only they trained. The person's text is tokenized with the parent's tokenizer (the run's ``tokenizer.json`` is
the parent's); a character that tokenizer cannot encode is refused. ``model.safetensors`` holds only the adapter
(``full``: every weight); loading rebuilds the parent's network and adds it. Sampling and export use the merged
weights W + (alpha / rank) B A, so genlab's decoder and plain transformers read an ordinary GPT-2.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tokenizers import Tokenizer

from genlab.data.text import TextCorpus
from genlab.data.tokenizers import EOT, UNK, eot_id, train_tokenizer
from genlab.data.tokens import TextData, TextDataConfig, encode_splits
from genlab.errors import GenlabError
from genlab.files import atomic_write_bytes
from genlab.modalities.text import Texts
from genlab.models.base import Family
from genlab.models.gpt import GPT
from genlab.nets import n_params


@dataclass(frozen=True)
class LoraConfig:
    """How the parent is adapted. Its shape (layers, width, context, tokenizer) is the parent's."""

    rank: int = 8  # rank r of each adapter B A (parameters per adapted d_in x d_out weight: r (d_in + d_out))
    alpha: float = 16.0  # the adapter's update is scaled by alpha / rank
    dropout: float = 0.05  # dropout on the adapter's input while training
    target: str = "c_attn,c_proj"  # GPT-2 modules adapted: c_attn (q, k, v), c_proj (attention, MLP out), c_fc
    full: bool = False  # fine-tune every weight instead of adapters (model.safetensors then holds them all)

    limits: ClassVar[dict[str, str]] = {"rank": "[1, 4096]", "alpha": "(0, 1000000]", "dropout": "[0, 1)"}

    def validate(self) -> None:
        modules = self.modules()
        if not modules or any(m not in ("c_attn", "c_proj", "c_fc") for m in modules):
            raise ValueError(f"model.target must name some of c_attn, c_proj, c_fc (comma-separated), "
                             f"got {self.target!r}")

    def modules(self) -> list[str]:
        return [m.strip() for m in self.target.split(",") if m.strip()]


class Adapted(torch.nn.Module):
    """A peft-wrapped GPT-2 whose state dict is the adapter alone (what is saved, checkpointed and loaded)."""

    def __init__(self, peft_model: torch.nn.Module) -> None:
        super().__init__()
        self.peft = peft_model
        self.adapter_names = frozenset(n for n, p in self.named_parameters() if p.requires_grad)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.peft(*args, **kwargs)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        prefix = kwargs.get("prefix", "")
        return {k: v for k, v in super().state_dict(*args, **kwargs).items() if k[len(prefix):] in self.adapter_names}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if strict and set(state_dict) != self.adapter_names:
            raise RuntimeError(f"adapter tensors differ: got {len(state_dict)}, expected {len(self.adapter_names)}")
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def merged(self) -> torch.nn.Module:
        """A plain GPT2LMHeadModel holding W + (alpha / rank) B A (a copy: the adapter stays as it is)."""
        return copy.deepcopy(self.peft).merge_and_unload()


class Lora(Family):
    name = "lora"
    modality = "text"
    data_interface = "tokens"
    uses_parent = True
    parent_relation = "tuned from"
    cites = ("Hu et al. 2021, LoRA: Low-Rank Adaptation of Large Language Models; "
             "Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2)")
    export_hint = GPT.export_hint
    export_usage = GPT.export_usage
    Config = LoraConfig
    train_defaults = {"max_steps": 300, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 20, "weight_decay": 0.0,
                      "eval_every": 100}
    example = {"set": ["train.batch_size=8", "train.warmup_steps=5"]}

    # -- data: the person's text in the parent's tokens -------------------------------------------------------
    @classmethod
    def prepare_data(cls, source: Any, data_config: TextDataConfig, folder: Path, *, modality: str | None = None
                     ) -> TextData:
        """Split the text and encode it losslessly (one token per character seen); ``build`` re-encodes it with the
        parent's tokenizer, which only the family instance knows."""
        if not isinstance(source, TextCorpus):
            raise GenlabError("the lora family tunes on text: give a .txt file or a folder of text files")
        train_docs, val_docs = source.split(data_config.val_fraction)
        stand_in = train_tokenizer("char", [*train_docs, *val_docs], vocab_size=data_config.vocab_size)
        folder.mkdir(parents=True, exist_ok=True)
        encode_splits(stand_in, {"train": train_docs, "val": val_docs}, folder)
        return TextData(stand_in, folder)

    # -- networks -------------------------------------------------------------------------------------------------
    @classmethod
    def check_parent(cls, parent: Any) -> None:
        if parent.family != GPT.name or parent.modality != cls.modality:
            raise GenlabError(f"the parent is a {parent.family} run on {parent.modality}; only gpt runs on text can "
                              "be tuned")

    @property
    def base_(self) -> GPT:
        """The parent's gpt family (its network is read, never trained or written)."""
        if self.parent is None:
            raise GenlabError("the lora family builds on a gpt run; its parent run is missing (moved or deleted?)")
        return self.parent.model

    def build(self, data: TextData, *, seed: int) -> None:
        base = self.base_
        self.tokenizer_, self.vocab_size_ = base.tokenizer_, base.vocab_size_
        if data.tokenizer.to_str() != base.tokenizer_.to_str():  # first build on freshly prepared text
            retokenize(data, base.tokenizer_)
        data.block_size = base.config.block_size
        data.check_block(base.config.block_size)
        model = copy.deepcopy(base.model_).train()  # a copy: the parent's weights are never trained
        if self.config.full:
            self.networks_ = {"model": model.requires_grad_(True)}
            return
        from peft import LoraConfig as PeftLora
        from peft import get_peft_model

        c = self.config
        spec = PeftLora(r=c.rank, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=c.modules(),
                        fan_in_fan_out=True, bias="none")  # GPT-2's Conv1D stores weights as (d_in, d_out)
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)  # peft asks transformers
            torch.manual_seed(seed)  # A is drawn at random (B starts at zero: the tuned model starts as the parent)
            self.networks_ = {"model": Adapted(get_peft_model(model, spec)).train()}
        self._merged: tuple[Any, torch.nn.Module] | None = None

    def architecture(self) -> dict[str, Any]:
        arch = {"family": self.name, **dataclasses.asdict(self.config)}
        arch.pop("dropout")  # changes training, not what the weights mean
        return {**arch, "base": self.base_.architecture()}

    def merged(self) -> torch.nn.Module:
        """The tuned network as a plain GPT2LMHeadModel (cached until the adapter changes)."""
        net = self.networks_["model"]
        if not isinstance(net, Adapted):
            return net
        params = [p for n, p in net.named_parameters() if n in net.adapter_names]
        key = (tuple(p._version for p in params), tuple(p.data_ptr() for p in params))  # in-place updates bump it
        if getattr(self, "_merged", None) is None or self._merged[0] != key:
            self._merged = (key, net.merged().eval().requires_grad_(False))
        return self._merged[1]

    def _gpt(self) -> GPT:
        """A gpt family around the merged weights: sampling and export are gpt's own."""
        base = self.base_
        gpt = GPT(base.config, modality=self.modality)
        gpt.tokenizer_, gpt.vocab_size_ = base.tokenizer_, base.vocab_size_
        gpt.networks_ = {"model": self.merged()}
        return gpt

    # -- training -------------------------------------------------------------------------------------------------
    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return GPT.loss(self, batch)  # the model_ property below is the trained network

    @property
    def model_(self) -> torch.nn.Module:
        return self.networks_["model"]

    def after_step(self, step: int) -> None:
        self._merged = None  # the adapter moved: merge again when sampled

    def preview(self, step: int, folder: Path) -> None:
        text = self.sample(1, max_new_tokens=200, seed=step)[0]
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"step-{step}.txt", text.encode("utf-8"))

    def evaluate(self, data: TextData, *, max_tokens: int = 0, batch_size: int = 16) -> dict[str, Any]:
        """The person's held-out text and the parent's own (the base corpus), before tuning and after."""
        from genlab.evaluate.text import evaluate_lm

        base, parent_data = self.base_.model_, self.parent.data
        parent_data.block_size = self.base_.config.block_size
        after = evaluate_lm(self.merged(), data, batch_size=batch_size, max_tokens=max_tokens)
        before = evaluate_lm(base, data, batch_size=batch_size, max_tokens=max_tokens)
        base_before = evaluate_lm(base, parent_data, batch_size=batch_size, max_tokens=max_tokens)
        base_after = evaluate_lm(self.merged(), parent_data, batch_size=batch_size, max_tokens=max_tokens)
        return {**after, "person_ppl_before": before["perplexity"], "person_ppl_after": after["perplexity"],
                "base_ppl_before": base_before["perplexity"], "base_ppl_after": base_after["perplexity"],
                "adapter_params": self.adapter_params(), "base_params": n_params(base)}

    def adapter_params(self) -> int:
        """Parameters tuned and saved (every weight with ``full``)."""
        net = self.networks_["model"]
        return sum(t.numel() for t in net.state_dict().values()) if isinstance(net, Adapted) else n_params(net)

    # -- sampling and export: gpt's, on the merged weights -------------------------------------------------------
    def causal_lm(self) -> torch.nn.Module:
        """The merged network, for a decoder outside ``sample`` (the server's continuous batch)."""
        return self.merged()

    def encode_prompt(self, prompt: str) -> list[int]:
        return self._gpt().encode_prompt(prompt)

    def sample(self, n: int = 1, *, seed: int | None = None, prompt: str = "", max_new_tokens: int = 200,
               temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None, on_text: Any = None,
               logits_processor: Any = None, stop: Any = None) -> Texts:
        """As gpt's ``sample`` (streaming, watermark, stop), from the merged weights."""
        return self._gpt().sample(n, seed=seed, prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_k=top_k, top_p=top_p, on_text=on_text, logits_processor=logits_processor,
                                  stop=stop)

    def export(self, folder: Path) -> None:
        """The merged weights as a folder plain ``AutoModelForCausalLM`` loads, with the parent's tokenizer."""
        self._gpt().export(folder)


def retokenize(data: TextData, tokenizer: Tokenizer) -> None:
    """Re-encode ``data`` (written by ``prepare_data``'s lossless stand-in) with ``tokenizer``, in place; characters
    that tokenizer cannot encode (a character tokenizer's ``<unk>``) are refused, a few of them named."""
    stand_in = data.tokenizer
    chars = {i: c for c, i in stand_in.get_vocab().items()}
    eot, unk = eot_id(stand_in), tokenizer.token_to_id(UNK)
    if unk is not None:
        bad = sorted(c for c in chars.values() if c not in (EOT, UNK) and unk in tokenizer.encode(c).ids)
        if bad:
            shown = " ".join(repr(c) for c in bad[:6]) + (" ..." if len(bad) > 6 else "")
            raise GenlabError(f"the tuning text holds {len(bad)} character(s) the base run's tokenizer never saw "
                              f"({shown}); remove or replace them")
    splits = {}
    for split in ("train", "val"):
        ids = np.asarray(data.arrays[split])
        parts = np.split(ids, np.flatnonzero(ids == eot))  # every part but the first starts with <|endoftext|>
        splits[split] = ["".join(chars[int(i)] for i in part[1 if k else 0:]) for k, part in enumerate(parts)]
    data.arrays = {}  # let go of the memory maps before their files are replaced
    encode_splits(tokenizer, splits, data.folder)
    data.tokenizer = tokenizer
    data.__post_init__()
