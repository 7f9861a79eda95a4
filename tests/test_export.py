import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from genlab.errors import GenlabError


def test_export_loads_in_plain_transformers_with_equal_logits(trained_run, tmp_path):
    # Run
    out = trained_run.export(tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = PreTrainedTokenizerFast.from_pretrained(out)
    # Assert: same tokens, same logits
    text = "HAMLET:\nTo be, or not"
    ids = tok(text, return_tensors="pt").input_ids
    assert ids[0].tolist() == trained_run.model.tokenizer_.encode(text).ids
    with torch.no_grad():
        ours = trained_run.model.model_.eval()(input_ids=ids).logits
        theirs = model(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert tok.decode(ids[0]) == text


def test_export_refuses_an_existing_folder(trained_run, tmp_path):
    with pytest.raises(GenlabError, match="already exists"):
        trained_run.export(tmp_path)
