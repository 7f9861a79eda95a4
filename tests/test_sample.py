import pytest
import torch

from genlab.errors import GenlabError
from genlab.sample.text import generate_ids, pick


def test_same_seed_same_text(trained_run):
    a = trained_run.sample(3, prompt="HAMLET:", max_new_tokens=40, seed=7, top_k=20, top_p=0.9)
    b = trained_run.sample(3, prompt="HAMLET:", max_new_tokens=40, seed=7, top_k=20, top_p=0.9)
    c = trained_run.sample(3, prompt="HAMLET:", max_new_tokens=40, seed=8, top_k=20, top_p=0.9)
    assert a == b and a != c and len(a) == 3 and all(len(t) == 40 for t in a)


def test_greedy_matches_transformers_generate(trained_run):
    # Setup
    model = trained_run.model.model_.eval()
    prompt = trained_run.model.encode_prompt("HAMLET:\nTo be")
    # Run: beyond the 32-token context, so both slide... transformers cannot: stay within the context
    ours = generate_ids(model, prompt, n=1, max_new_tokens=20, temperature=0)[0]
    theirs = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, eos_token_id=None,
                            pad_token_id=0)[0, len(prompt):].tolist()
    # Assert
    assert ours == theirs


def test_generation_slides_past_the_context(trained_run):
    (text,) = trained_run.sample(1, max_new_tokens=150, seed=1)
    assert len(text) == 150  # block_size is 32: the window slid several times


def test_streaming_gives_the_same_text(trained_run):
    pieces = []
    (text,) = trained_run.sample(1, prompt="The", max_new_tokens=50, seed=3, on_text=pieces.append)
    assert "".join(pieces) == text and len(pieces) > 1


def test_top_k_one_is_greedy():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(pick(logits, temperature=1.0, top_k=1, top_p=None, generator=g), logits.argmax(-1))
    assert torch.equal(pick(logits, temperature=1.0, top_k=None, top_p=1e-6, generator=g), logits.argmax(-1))


def test_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    seen = {int(pick(logits, temperature=1.0, top_k=None, top_p=0.8, generator=g)) for _ in range(300)}
    assert seen == {0, 1}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "^n must be at least 1"),  # the library names arguments; the CLI shows them as flags
        ({"max_new_tokens": 0}, "^max_new_tokens must be at least 1"),
        ({"temperature": -1}, "^temperature must be 0"),
        ({"top_k": 0}, "^top_k must be at least 1"),
        ({"top_p": 1.5}, "^top_p must be in"),
        ({"label": 3}, "^label is not an option of gpt sampling"),
        ({"prompt": "x" * 40}, "the prompt is 40 tokens, longer than the model's context of 32"),
    ],
)
def test_bad_sampling_arguments(trained_run, kwargs, message):
    kwargs = {"n": 1, **kwargs}
    with pytest.raises(GenlabError, match=message):
        trained_run.sample(kwargs.pop("n"), **kwargs)
