"""Tokenizers from Hugging Face ``tokenizers``: character level and byte-level BPE.

Both are trained on the training split only, saved as ``tokenizer.json`` and loadable by
``transformers.PreTrainedTokenizerFast``. Both reserve ``<|endoftext|>`` (written between documents);
the character tokenizer also has ``<unk>`` for characters never seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from genlab.errors import GenlabError

EOT = "<|endoftext|>"  # document separator
UNK = "<unk>"  # unseen character (character tokenizer only)


def train_tokenizer(kind: str, texts: Sequence[str], *, vocab_size: int) -> Tokenizer:
    if kind == "char":
        return _train_char(texts)
    if kind == "bpe":
        return _train_bpe(texts, vocab_size)
    raise GenlabError(f"unknown tokenizer '{kind}' (use 'char' or 'bpe')")


def _train_char(texts: Sequence[str]) -> Tokenizer:
    chars: set[str] = set()
    for t in texts:
        chars.update(t)
    vocab = {EOT: 0, UNK: 1}
    for c in sorted(chars):
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()  # join characters back without spaces
    tok.add_special_tokens([EOT])
    return tok


def _train_bpe(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise GenlabError(f"{path}: tokenizer file missing; the run folder is incomplete")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise GenlabError(f"{path}: cannot read the tokenizer ({e})") from None


def eot_id(tok: Tokenizer) -> int:
    i = tok.token_to_id(EOT)
    if i is None:  # every tokenizer genlab makes has it: this one was edited or replaced
        raise GenlabError(f"the tokenizer has no {EOT} token; the run's tokenizer.json is damaged or was replaced")
    return i
