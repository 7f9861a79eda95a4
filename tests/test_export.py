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


def test_gpt_export_generates_within_its_context_in_a_plain_pipeline(trained_run, tmp_path):
    # Setup: a context of 32 tokens; transformers cannot slide past it
    from transformers import pipeline

    out = trained_run.export(tmp_path / "hf")
    generate = pipeline("text-generation", model=str(out))
    # Run: the default call, which used to run past the context and fail inside the model
    text = generate("HAMLET:")[0]["generated_text"]
    # Assert: it stops at the context; the README is the card, with this export's usage first
    assert text.startswith("HAMLET:") and len(generate.tokenizer(text).input_ids) <= 32
    readme = (out / "README.md").read_text()
    assert readme.startswith("---") and "## Use this export" in readme and "pipeline('text-generation'" in readme


@pytest.mark.parametrize("family", ["vae", "gan", "ppca"])
def test_image_exports_sample_the_same_images_with_pytorch_alone(family, tmp_path, one_thread):
    # Setup: a tiny conditional (where the family can be) run on 8x8 digits, and its export
    import json
    import subprocess
    import sys

    import genlab
    from genlab import registry

    extra = {"vae": ["model.conditional=true"], "gan": ["model.conditional=true"], "ppca": []}[family]
    run = genlab.train(family, "digits", out=tmp_path / "run", overrides=[
        *registry.get_family(family).example["set"], *extra, "train.max_steps=5", "release.track_energy=false"])
    out = run.export(tmp_path / "export")
    # Run: a fresh interpreter that imports nothing of genlab
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import modeling; "
            "net = modeling.load(sys.argv[1]); x = modeling.sample(net, 6, seed=3); "
            "assert not [m for m in sys.modules if m.startswith('genlab')]; print(json.dumps(x.tolist()))")
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    # Assert: the same images genlab samples with the same seed (without its watermark)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == run.sample(6, seed=3, watermark=False).tolist()
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "modeling.py"]


def test_diffusion_exports_load_in_diffusers(tmp_path, one_thread):
    # Setup: an unconditional and a class-conditional tiny diffusion run, exported
    import numpy as np
    from diffusers import DDPMPipeline, DiffusionPipeline

    import genlab
    from genlab import registry

    over = [*registry.get_family("diffusion").example["set"], "train.max_steps=3", "release.track_energy=false"]
    plain = genlab.train("diffusion", "digits", out=tmp_path / "u", overrides=over)
    cond = genlab.train("diffusion", "digits", out=tmp_path / "c", overrides=[*over, "model.conditional=true"])
    # Run
    pipe = DiffusionPipeline.from_pretrained(str(plain.export(tmp_path / "ue")))
    images = pipe(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(1),
                  output_type="np").images
    cpipe = DiffusionPipeline.from_pretrained(str(cond.export(tmp_path / "ce")), trust_remote_code=True)
    labelled = cpipe(class_labels=[3, 7], num_inference_steps=5, generator=torch.Generator().manual_seed(1),
                     output_type="np").images
    # Assert: a plain DDPMPipeline giving genlab's own DDIM samples (same noise, same steps); labels accepted
    assert isinstance(pipe, DDPMPipeline) and images.shape == (2, 8, 8, 1)
    ours = plain.sample(2, seed=1, steps=5, watermark=False)  # uint8 (2, 1, 8, 8)
    theirs = np.round(images * 255).transpose(0, 3, 1, 2)
    assert np.abs(theirs - ours.astype(float)).max() <= 1
    assert type(cpipe).__name__ == "GenlabClassPipeline" and labelled.shape == (2, 8, 8, 1)


def test_files_are_readable_and_secrets_are_not(trained_run, tmp_path, genlab_home):
    # every file of a run and of an export is mode 0644 (folders 0755) but the watermark key and the signing key
    import stat

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    out = trained_run.export(tmp_path / "hf")
    assert mode(out) == 0o755 and all(mode(p) == 0o644 for p in out.iterdir())
    for p in trained_run.path.iterdir():
        if p.is_file():
            assert mode(p) == (0o600 if p.name == "release.json" else 0o644), p
    from genlab.responsible.keys import ensure_identity

    identity, _ = ensure_identity()
    assert mode(identity.folder / "key.pem") == 0o600
