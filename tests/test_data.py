import numpy as np
import pytest
import torch

from genlab.registry import get_modality
from genlab.data.text import MIN_DOCS_FOR_DOC_SPLIT, corpus_from_path
from genlab.data.tokenizers import train_tokenizer
from genlab.data.tokens import TextData, TextDataConfig, prepare_text
from genlab.errors import GenlabError

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 20


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizers_round_trip_exactly(kind):
    tok = train_tokenizer(kind, [TEXT + "é ü\t"], vocab_size=300)
    s = "Whether 'tis nobler, é ü\tto be"
    assert tok.decode(tok.encode(s).ids) == s


def test_char_tokenizer_marks_unseen_characters():
    tok = train_tokenizer("char", ["abc"], vocab_size=300)
    assert tok.decode(tok.encode("abz").ids) == "ab<unk>"


def test_split_is_by_document_and_deterministic(tmp_path):
    # Setup: enough documents that whole documents are held out
    for i in range(MIN_DOCS_FOR_DOC_SPLIT + 10):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"document {i}\n" * 50)
    corpus = corpus_from_path(tmp_path)
    # Run
    train, val = corpus.split(0.2)
    train2, val2 = corpus_from_path(tmp_path).split(0.2)
    # Assert: every document is wholly in one split, and the split is the same each time
    assert train == train2 and val == val2
    assert len(train) + len(val) == MIN_DOCS_FOR_DOC_SPLIT + 10 and val
    assert not set(train) & set(val)


def test_single_file_holds_out_its_tail(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("".join(f"line {i}\n" for i in range(1000)))
    train, val = corpus_from_path(f).split(0.1)
    assert train[0] + val[0] == f.read_text()
    assert val[0].startswith("line 9") and train[0].endswith("\n")


def test_tokens_are_memory_mapped_and_batches_seeded(tmp_path, corpus_file):
    # Setup
    data = prepare_text(corpus_from_path(corpus_file), TextDataConfig(), tmp_path / "data")
    data.block_size = 16
    # Run
    x1, y1 = data.batch("train", 4, torch.Generator().manual_seed(0))
    x2, _ = data.batch("train", 4, torch.Generator().manual_seed(0))
    # Assert
    assert isinstance(data.arrays["train"], np.memmap) and data.arrays["train"].dtype == np.uint16
    assert x1.shape == (4, 16) and torch.equal(x1, x2) and torch.equal(x1[:, 1:], y1[:, :-1])
    reopened = TextData(data.tokenizer, tmp_path / "data")
    assert reopened.n_tokens("val") == data.n_tokens("val") > 0
    assert data.meta["splits"]["train"]["chars"] + data.meta["splits"]["val"]["chars"] == 120_000


def test_builtin_datasets_resolve():
    assert len(get_modality("text").resolve("shakespeare").files) == 42
    assert len(get_modality("text").resolve("pycode").files) > 300


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"abc\x00\x01def", "looks binary"),
        (b"caf\xe9 au lait", "is not UTF-8 text (byte 0xe9 at offset 3)"),
    ],
)
def test_bad_files_are_refused(tmp_path, content, message):
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    with pytest.raises(GenlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        corpus_from_path(f).split(0.1)


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(GenlabError, match="no such file"):
        get_modality("text").resolve(str(tmp_path / "nope.txt"))
    (tmp_path / "pic.png").write_bytes(b"\x89PNG")
    with pytest.raises(GenlabError, match="folder holds no .txt, .md, .py files"):
        get_modality("text").resolve(str(tmp_path))
    with pytest.raises(GenlabError, match="unknown dataset 'shakespear'.*did you mean 'shakespeare'"):
        get_modality("text").resolve("shakespear")


def test_corpus_shorter_than_a_block(tmp_path):
    f = tmp_path / "short.txt"
    f.write_text("a tiny corpus\n" * 10)
    data = prepare_text(corpus_from_path(f), TextDataConfig(), tmp_path / "d")
    with pytest.raises(GenlabError, match="shorter than one block of 64"):
        data.check_block(64)
