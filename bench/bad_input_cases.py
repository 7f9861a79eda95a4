"""The table of bad inputs that ``bench/bad_inputs.py`` runs: one ``Case`` per line, grouped by verb.

A case's argv runs in its own empty folder (built by ``setup``, see ``bad_input_files.py``), so paths are relative:
``run`` is a copy of a tiny trained run, ``out`` a folder that does not exist yet. Most cases expect genlab's own
one-line error and exit code 2 (``ERR``; the argument parser's errors too: an unknown verb, "--n many");
``OK`` marks the few inputs that are odd but valid (exit 0), ``VERDICT`` ``genlab verify``'s "not trusted" (exit 1)
for a file it gives a verdict on (refusing it with exit 2 is fine too), and ``TOLERANT`` a damaged record a verb can
do without (a wrong type in summary.json for the model card): exit 0 or 2.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import bad_input_files as f
from bad_input_files import ERR, ERR_SAYING, OK, TOLERANT, VERDICT, Case, Expect, Setup  # noqa: F401


CASES: list[Case] = []


def c(name: str, cmd: str, setup: Setup | None = None, expect: Expect = ERR, **kw) -> None:
    """Add a case; ``cmd`` is split like a shell line (quote paths with spaces)."""
    CASES.append(Case(name, tuple(shlex.split(cmd)), setup, expect, **kw))


def nothing_in(folder: str) -> Callable[[Path], str | None]:
    """A check: nothing was written into ``folder`` (a place outside the run that a symlink pointed to)."""
    return lambda d: f"wrote into {folder}/ outside the run" if any((d / folder).iterdir()) else None


# -- train: small enough that an input genlab wrongly accepts finishes in seconds (and fails the case by exit 0) ---
OFF = "--set train.eval_every=0 --set train.eval_batches=1 --set train.batch_size=4 --set train.precision=fp32 " \
      "--set release.track_energy=false --set train.max_steps=3 --out out"
TINY = {
    "gpt": "--set model.n_layer=1 --set model.n_head=2 --set model.n_embd=32 --set model.block_size=16",
    "bert": "--set model.n_layer=1 --set model.n_head=2 --set model.n_embd=32 --set model.block_size=16",
    "t5": "--set model.n_layer=1 --set model.n_decoder_layer=1 --set model.n_head=2 --set model.d_model=32 "
          "--set model.d_kv=16 --set model.d_ff=64 --set data.vocab_size=300",
    "vae": "--set model.latent_dim=4 --set model.width=4 --set model.hidden=16",
    "gan": "--set model.z_dim=4 --set model.width=4 --set model.embed_dim=4",
    "diffusion": "--set model.channels=[8,8] --set model.norm_groups=4 --set model.attention=false "
                 "--set model.timesteps=10 --set model.sample_steps=2",
    "ppca": "--set model.components=4",
    "copula": "--set model.quantiles=16",
    "ctgan": "--set model.g_width=16 --set model.d_width=16 --set model.z_dim=8 --set model.pac=1",
}
TRAIN_DATA = {"gpt": "corpus.txt", "bert": "corpus.txt", "t5": "pairs.jsonl", "copula": "t.csv",
              "ctgan": "t.csv"}  # the image families: digits
TABLE = "a,b,c\n" + "".join(f"{i},{i % 3},x{i % 2}\n" for i in range(40))  # a valid small table
DATA = f.files(**{"corpus.txt": f.corpus(), "pairs.jsonl": f.pairs_jsonl(), "t.csv": TABLE})


def t(name: str, family: str, extra: str, setup: Setup | None = None, expect: Expect = ERR, *, data: str = "",
      **kw) -> None:
    """A training case: the family's tiny settings, then ``extra`` (a later --set wins)."""
    data = shlex.quote(data or TRAIN_DATA.get(family, "digits"))
    c(f"train-{family}-{name}", f"train {family} --data {data} {TINY[family]} {OFF} {extra}",
      f.both(DATA, setup) if setup else DATA, expect, **kw)


c("verb-unknown", "bogus")
for family in TINY:  # the harness's controls: each family's tiny settings train (so a refusal below is the bad value)
    t("baseline-ok", family, "", expect=OK)
c("train-unknown-family", f"train nosuch --data corpus.txt {TINY['gpt']} {OFF}", DATA)
t("unknown-dataset", "gpt", "", data="nosuchdata")
t("data-missing-path", "gpt", "", data="./missing.txt")
t("data-empty-file", "gpt", "", f.files(**{"empty.txt": ""}), data="empty.txt")
t("data-binary-file", "gpt", "", f.files(**{"bin.txt": f.BINARY}), data="bin.txt")
t("data-invalid-utf8", "gpt", "", f.files(**{"bad.txt": f.INVALID_UTF8 * 200}), data="bad.txt")
t("data-empty-folder", "gpt", "", f.files(emptydir=None), data="emptydir")
t("data-brackets-missing", "gpt", "", expect=ERR_SAYING("no[bold]such[/bold].txt"), data="no[bold]such[/bold].txt")
t("data-unicode-spaces-ok", "gpt", "", f.files(**{"ünï cødé [x].txt": f.corpus()}), OK, data="ünï cødé [x].txt")
t("data-images-for-text", "gpt", "", data="digits")
t("data-text-for-images", "vae", "", data="corpus.txt")
t("data-text-for-pairs", "t5", "", data="corpus.txt")
t("images-bomb-png", "vae", "--set data.size=8", f.image_folder(f.png_bomb()), data="images")
t("images-truncated-png", "vae", "--set data.size=8", f.image_folder(f.png_truncated()), data="images")
t("images-not-png", "vae", "--set data.size=8", f.image_folder(f.NOT_A_PNG), data="images")
t("images-only-bad", "vae", "--set data.size=8", f.files(**{"images__a.png": f.png_bad_crc()}), data="images")
t("pairs-binary", "t5", "", f.files(**{"pairs.jsonl": f.BINARY}))
t("pairs-not-json", "t5", "", f.files(**{"pairs.jsonl": "{not json\n" * 40}))
t("pairs-wrong-columns", "t5", "", f.files(**{"pairs.jsonl": '{"a": 1, "b": [2]}\n' * 40}))
t("pairs-wrong-types", "t5", "", f.files(**{"pairs.jsonl": "".join(f'{{"source": {i}, "target": [{i}]}}\n'
                                                                   for i in range(40))}))
t("pairs-csv-no-header", "t5", "", f.files(**{"p.csv": "a,b\n" * 40}), data="p.csv")
t("out-existing-file", "gpt", "--out existing.txt", f.files(**{"existing.txt": "x"}))
t("out-existing-run", "gpt", "--out run", f.run("gpt"))
t("resume-missing", "gpt", "--resume --out missing")
t("resume-stranded", "gpt", "--resume --out run", f.run("gpt", f.remove("checkpoint.safetensors")), data="shakespeare")
t("resume-checkpoint-garbage", "gpt", "--resume --out run", f.run("gpt", f.write("checkpoint.safetensors", f.BINARY)),
  data="shakespeare")
t("config-missing-file", "gpt", "--config missing.toml")
t("config-bad-toml", "gpt", "--config bad.toml", f.files(**{"bad.toml": "[train\nmax_steps = = 3\n"}))
t("config-binary", "gpt", "--config bad.toml", f.files(**{"bad.toml": f.BINARY}))
t("config-unknown-section", "gpt", "--config c.toml", f.files(**{"c.toml": "[foo]\nx = 1\n"}))
t("config-unknown-key", "gpt", "--config c.toml", f.files(**{"c.toml": "[train]\nbogus = 1\n"}))
t("config-wrong-type", "gpt", "--config c.toml", f.files(**{"c.toml": '[train]\nmax_steps = "many"\n'}))
t("config-section-not-table", "gpt", "--config c.toml", f.files(**{"c.toml": 'train = 3\n'}))
t("config-unknown-shipped-name", "gpt", "--config no-such-config")
t("config-is-folder", "gpt", "--config adir", f.files(adir=None))
t("config-brackets-missing", "gpt", "--config '[x] c.toml'", expect=ERR_SAYING("[x] c.toml"))
t("set-no-equals", "gpt", "--set train.max_steps")
t("set-no-section", "gpt", "--set max_steps=3")
t("set-unknown-section", "gpt", "--set foo.bar=1")
t("set-unknown-key", "gpt", "--set train.bogus=1")
t("set-empty-key", "gpt", "--set train.=1")
for key, value in [  # every [train] key: negative, NaN, inf, zero, out of range, huge, wrong type
    ("max_steps", "-1"), ("max_steps", "abc"), ("max_steps", "1e30"), ("max_minutes", "nan"), ("max_minutes", "-5"),
    ("batch_size", "0"), ("batch_size", "1000000000000"), ("grad_accum", "0"), ("lr", "nan"), ("lr", "inf"),
    ("lr", "-0.001"), ("min_lr", "-1"), ("warmup_steps", "-1"), ("weight_decay", "-0.1"), ("beta1", "1.5"),
    ("beta2", "-0.1"), ("grad_clip", "nan"), ("grad_clip", "-1"), ("threads", "-1"), ("threads", "1000000"),
    ("log_every", "-1"), ("eval_every", "-1"), ("eval_batches", "0"), ("checkpoint_every", "-1"),
    ("sample_every", "-1"), ("seed", "100000000000000000000000"), ("compile", "maybe"), ("precision", "fp8"),
    ("device", "tpu"), ("keep_best", "2"),
]:
    t(f"set-train.{key}={value}", "gpt", f"--set train.{key}={value}")
for key, value in [("text_gamma", "1.5"), ("text_gamma", "0"), ("text_delta", "nan"), ("text_delta", "-1"),
                   ("z_threshold", "nan"), ("watermark", "2"), ("sign", "maybe"),
                   ("country", "NOT-A-COUNTRY"), ("track_energy", "[1]")]:
    t(f"set-release.{key}={value}", "gpt", f"--set release.{key}={value}")
for family, key, value in [
    ("gpt", "n_embd", "1048576"), ("gpt", "n_head", "3"), ("gpt", "n_head", "0"), ("gpt", "n_layer", "0"),
    ("gpt", "n_layer", "-1"), ("gpt", "block_size", "0"), ("gpt", "block_size", "1000000000"),
    ("gpt", "dropout", "1.5"), ("gpt", "dropout", "nan"), ("gpt", "activation", "swish"),
    ("bert", "mask_prob", "0"), ("bert", "random_token_frac", "0.5"), ("bert", "intermediate_size", "-4"),
    ("t5", "d_kv", "0"), ("t5", "relative_attention_num_buckets", "-1"), ("t5", "d_ff", "1000000000"),
    ("vae", "latent_dim", "0"), ("vae", "beta", "-1"), ("vae", "hidden", "1000000000"), ("vae", "conditional", "1"),
    ("gan", "ema", "1.5"), ("gan", "n_critic", "0"), ("gan", "loss", "hinge"), ("gan", "z_dim", "-1"),
    ("gan", "gp_weight", "nan"), ("diffusion", "channels", "[]"), ("diffusion", "channels", "[30]"),
    ("diffusion", "channels", "abc"), ("diffusion", "timesteps", "0"), ("diffusion", "sample_steps", "0"),
    ("diffusion", "min_snr_gamma", "-1"), ("diffusion", "label_dropout", "2"), ("ppca", "components", "100000"),
    ("ppca", "min_variance", "-1"),
]:
    t(f"set-model.{key}={value}", family, f"--set model.{key}={value}")
for family, key, value in [
    ("gpt", "tokenizer", "word"), ("gpt", "vocab_size", "-1 --set data.tokenizer=bpe"),
    ("gpt", "vocab_size", "1000000000 --set data.tokenizer=bpe"), ("gpt", "val_fraction", "0"),
    ("gpt", "val_fraction", "1.5"), ("gpt", "val_fraction", "nan"), ("t5", "max_source_tokens", "0"),
    ("t5", "max_target_tokens", "1000000000"), ("vae", "size", "100000"), ("vae", "size", "-1"),
    ("vae", "channels", "2"), ("gan", "val_fraction", "-0.5"),
]:
    t(f"set-data.{key}={value.split()[0]}", family, f"--set data.{key}={value}")
t("conditional-unlabelled", "vae", "--set model.conditional=true", data="faces")
t("flag-max-steps-negative", "gpt", "--max-steps -5")
t("flag-max-steps-not-int", "gpt", "--max-steps abc")
t("flag-seed-huge", "gpt", "--seed 100000000000000000000000")
t("flag-precision-fp8", "gpt", "--precision fp8")
t("flag-device-tpu", "gpt", "--device tpu")

# -- sample: flags out of range, and damaged or hostile run folders -------------------------------------------------
GPT = f.run("gpt")
S = "sample run --no-sign --max-new-tokens 5"
c("sample-n-zero", f"{S} --n 0", GPT)
c("sample-n-negative", f"{S} --n -1", GPT)
c("sample-n-and-max-new-tokens-huge", "sample run --no-sign --n 5000 --max-new-tokens 10000000", GPT)
c("sample-max-new-tokens-negative", "sample run --no-sign --max-new-tokens -1", GPT)
c("sample-temperature-nan", f"{S} --temperature nan", GPT)
c("sample-temperature-inf", f"{S} --temperature inf", GPT)
c("sample-temperature-negative", f"{S} --temperature -1", GPT)
c("sample-top-k-zero", f"{S} --top-k 0", GPT)
c("sample-top-k-negative", f"{S} --top-k -3", GPT)
c("sample-top-p-over-1", f"{S} --top-p 1.5", GPT)
c("sample-top-p-nan", f"{S} --top-p nan", GPT)
c("sample-seed-huge", f"{S} --seed 100000000000000000000000", GPT)
c("sample-n-not-int", f"{S} --n many", GPT)
c("sample-image-flag-on-text", f"{S} --steps 5", GPT)
c("sample-pairs-flag-on-text", f"{S} --beams 4", GPT)
c("sample-out-existing-file", f"{S} --out existing.txt", f.both(GPT, f.files(**{"existing.txt": "x"})))
c("sample-prompt-unknown-chars-ok", f"{S} --prompt 'ünï ☃ 日本'", GPT, OK)
c("sample-prompt-longer-than-context", f"{S} --prompt '{'to be or not to be ' * 20}'", GPT)
c("sample-run-missing", "sample nosuchrun")
c("sample-run-brackets-missing", "sample 'no[bold]such[/bold]run'", expect=ERR_SAYING("no[bold]such[/bold]run"))
c("sample-run-is-file", "sample afile", f.files(afile="x"))
c("sample-run-brackets-ok", "sample 'my [train] run' --no-sign --max-new-tokens 5", f.run("gpt", name="my [train] run"),
  OK)
c("sample-run-unicode-ok", "sample 'rün ☃ 日本' --no-sign --max-new-tokens 5", f.run("gpt", name="rün ☃ 日本"),
  OK)
c("sample-weights-missing", S, f.run("gpt", f.remove("model.safetensors")))
c("sample-weights-empty", S, f.run("gpt", f.write("model.safetensors", b"")))
c("sample-weights-garbage", S, f.run("gpt", f.write("model.safetensors", f.BINARY)))
c("sample-weights-missing-tensor", S, f.run("gpt", f.weights(f.drop_first_tensor)))
c("sample-weights-wrong-shape", S, f.run("gpt", f.weights(f.reshape_biggest)))
c("sample-weights-all-nan", S, f.run("gpt", f.weights(f.all_nan)))
c("sample-weights-is-folder", S, f.run("gpt", f.make_dir("model.safetensors")))
c("sample-weights-symlink-dev-zero", S, f.run("gpt", f.symlink("model.safetensors", "/dev/zero")))
c("sample-tokenizer-bigger-than-vocab", f"{S} --prompt 'éàü☃'", f.run("gpt", f.grow_tokenizer()))
c("sample-tokenizer-missing", S, f.run("gpt", f.remove("tokenizer.json")))
c("sample-tokenizer-garbage", S, f.run("gpt", f.write("tokenizer.json", "{not json")))
c("sample-config-missing", S, f.run("gpt", f.remove("config.toml")))
c("sample-config-bad-toml", S, f.run("gpt", f.write("config.toml", "family = \n[model\n")))
c("sample-config-wrong-type", S, f.run("gpt", f.toml_set("model", "n_embd", "big")))
c("sample-config-huge-n-embd", S, f.run("gpt", f.toml_set("model", "n_embd", 1048576)))
c("sample-config-unknown-family", S, f.run("gpt", f.toml_set(None, "family", "nope")))
c("sample-config-modality-mismatch", S, f.run("gpt", f.toml_set(None, "modality", "image")))
c("sample-config-json-garbage-ok", S, f.run("gpt", f.write("config.json", f.BINARY)), OK)  # rebuilt from config.toml
c("sample-meta-huge-vocab", S, f.run("gpt", f.json_set("data/meta.json", "vocab_size", 50_000_000)))
c("sample-release-json-garbage", S, f.run("gpt", f.write("release.json", "[1, 2")))
c("sample-release-json-wrong-type", S, f.run("gpt", f.json_set("release.json", "text_key", "abc")))
c("sample-samples-dangling-symlink", "sample run --no-sign --max-new-tokens 5 --n 2",
  f.run("gpt", f.symlink("samples", "/nonexistent-genlab-target")))
c("sample-samples-symlink-outside", "sample run --no-sign --max-new-tokens 5 --n 2",
  f.both(f.outside("elsewhere", None), f.run("gpt", f.symlink("samples", "elsewhere"))), check=nothing_in("elsewhere"))

VAE = f.run("vae")
V = "sample run --no-sign"
c("sample-vae-n-huge", f"{V} --n 1000000000", VAE)
c("sample-vae-label-unconditional", f"{V} --label 3", VAE)
c("sample-vae-label-negative", f"{V} --label -1", VAE)
c("sample-vae-text-flag", f"{V} --prompt hi", VAE)
c("sample-vae-guidance-nan", f"{V} --guidance nan", VAE)
c("sample-vae-meta-bad-shape", V, f.run("vae", f.json_set("data/meta.json", "shape", [1, 100000, 100000])))
T5 = f.run("t5")
c("sample-t5-no-source", "sample run --no-sign", T5)
c("sample-t5-stdin-empty", "sample run --no-sign --source -", T5, TOLERANT)
c("sample-t5-stdin-invalid-utf8", "sample run --no-sign --source -", T5, stdin=f.INVALID_UTF8)
c("sample-t5-beams-zero", "sample run --no-sign --source 'def f(): pass' --beams 0", T5)
c("sample-t5-beams-huge", "sample run --no-sign --source 'def f(): pass' --beams 1000000", T5)
c("sample-t5-no-repeat-negative", "sample run --no-sign --source 'def f(): pass' --no-repeat-ngram -1", T5)

# -- vary, interpolate --------------------------------------------------------------------------------------------
VI = lambda *named: f.both(VAE, f.files(**dict(named)))  # noqa: E731
c("vary-image-missing", "vary run missing.png --no-sign", VAE)
c("vary-image-bomb", "vary run bomb.png --no-sign", VI(("bomb.png", f.png_bomb())))
c("vary-image-truncated", "vary run cut.png --no-sign", VI(("cut.png", f.png_truncated())))
c("vary-image-bad-crc", "vary run crc.png --no-sign", VI(("crc.png", f.png_bad_crc())))
c("vary-image-is-text", "vary run text.png --no-sign", VI(("text.png", f.NOT_A_PNG)))
c("vary-image-empty", "vary run empty.png --no-sign", VI(("empty.png", b"")))
c("vary-image-is-folder", "vary run adir --no-sign", VI(("adir", None)))
c("vary-image-1x1-ok", "vary run tiny.png --no-sign --n 2", VI(("tiny.png", f.png(1, 1))), OK)
c("vary-image-rgba-for-grey-model", "vary run rgba.png --no-sign", VI(("rgba.png", f.png(8, 8, color_type=6))))
c("vary-image-brackets-ok", "vary run 'x [bold].png' --no-sign --n 2", VI(("x [bold].png", f.GOOD_PNG)), OK)
c("vary-strength-over-1", "vary run ok.png --no-sign --strength 1.5", VI(("ok.png", f.GOOD_PNG)))
c("vary-strength-nan", "vary run ok.png --no-sign --strength nan", VI(("ok.png", f.GOOD_PNG)))
c("vary-n-zero", "vary run ok.png --no-sign --n 0", VI(("ok.png", f.GOOD_PNG)))
c("vary-n-huge", "vary run ok.png --no-sign --n 1000000000", VI(("ok.png", f.GOOD_PNG)))
c("vary-out-existing-file", "vary run ok.png --no-sign --out ok.png", VI(("ok.png", f.GOOD_PNG)))
c("vary-text-run", "vary run ok.png --no-sign", f.both(GPT, f.files(**{"ok.png": f.GOOD_PNG})))
c("vary-image-symlink-loop", "vary run a.png --no-sign", f.both(VAE, f.in_case(f.link_loop)))
c("interpolate-steps-zero", "interpolate run --no-sign --steps 0", VAE)
c("interpolate-steps-negative", "interpolate run --no-sign --steps -4", VAE)
c("interpolate-steps-huge", "interpolate run --no-sign --steps 100000000", VAE)
c("interpolate-from-only", "interpolate run --no-sign --from ok.png", VI(("ok.png", f.GOOD_PNG)))

# -- continue (video) --------------------------------------------------------------------------------------------
VDM = f.run("vdm")
VC = lambda *named: f.both(VDM, f.files(**dict(named)))  # noqa: E731
c("continue-clip-missing", "continue run missing.gif --no-sign", VDM)
c("continue-clip-truncated", "continue run cut.gif --no-sign", VC(("cut.gif", f.gif()[:120])))
c("continue-clip-is-text", "continue run text.gif --no-sign", VC(("text.gif", f.NOT_A_PNG)))
c("continue-clip-empty-mp4", "continue run empty.mp4 --no-sign", VC(("empty.mp4", b"")))
c("continue-clip-wrong-type", "continue run clip.txt --no-sign", VC(("clip.txt", "frames")))
c("continue-clip-empty-folder", "continue run adir --no-sign", VC(("adir", None)))
c("continue-frames-mixed-sizes", "continue run frames --no-sign",
  VC(("frames__0.png", f.png(32, 32)), ("frames__1.png", f.png(16, 16))))
c("continue-frames-zero", "continue run clip.gif --frames 0 --no-sign", VC(("clip.gif", f.gif())))
c("continue-frames-huge", "continue run clip.gif --frames 1000000000 --no-sign", VC(("clip.gif", f.gif())))
c("continue-given-past-clip", "continue run clip.gif --given 9 --no-sign", VC(("clip.gif", f.gif())))
c("continue-given-zero", "continue run clip.gif --given 0 --no-sign", VC(("clip.gif", f.gif())))
c("continue-held-out-negative", "continue run --held-out -1 --no-sign", VDM)
c("continue-held-out-past-end", "continue run --held-out 100000000 --no-sign", VDM)
c("continue-clip-and-held-out", "continue run clip.gif --held-out 0 --no-sign", VC(("clip.gif", f.gif())))
c("continue-neither", "continue run --no-sign", VDM)
c("continue-image-run", "continue run clip.gif --no-sign", f.both(VAE, f.files(**{"clip.gif": f.gif()})))
c("continue-clip-ok", "continue run clip.gif --frames 2 --no-sign", VC(("clip.gif", f.gif())), OK)
c("continue-held-out-ok", "continue run --held-out 0 --frames 6 --no-sign", VDM, OK)
c("interpolate-from-missing", "interpolate run --no-sign --from missing.png --to ok.png", VI(("ok.png", f.GOOD_PNG)))
c("interpolate-from-bomb", "interpolate run --no-sign --from bomb.png --to ok.png",
  VI(("bomb.png", f.png_bomb()), ("ok.png", f.GOOD_PNG)))
c("interpolate-text-run", "interpolate run --no-sign", GPT)

# -- eval, export, runs, card, audit ----------------------------------------------------------------------------
c("eval-max-tokens-negative", "eval run --max-tokens -1", GPT)
c("eval-image-flag-on-text", "eval run --n 10", GPT)
c("eval-val-missing", "eval run --max-tokens 1000", f.run("gpt", f.remove("data/val.bin")))
c("eval-val-odd-bytes", "eval run --max-tokens 1000", f.run("gpt", f.write("data/val.bin", b"\x01\x02\x03")))
c("eval-meta-huge-vocab", "eval run --max-tokens 1000",
  f.run("gpt", f.json_set("data/meta.json", "vocab_size", 50_000_000)))
c("eval-vae-n-zero", "eval run --n 0", VAE)
c("eval-vae-n-negative", "eval run --n -5", VAE)
c("eval-vae-images-garbage", "eval run --n 10", f.run("vae", f.write("data/images.safetensors", f.BINARY)))
c("eval-t5-beams-zero", "eval run --n 5 --beams 0", T5)
c("eval-t5-n-negative", "eval run --n -1", T5)
c("export-dest-existing-file", "export run existing.txt", f.both(GPT, f.files(**{"existing.txt": "x"})))
c("export-dest-existing-folder", "export run adir", f.both(GPT, f.files(adir=None)))
c("export-weights-missing", "export run dest", f.run("gpt", f.remove("model.safetensors")))
c("export-weights-symlink-outside", "export run dest",
  f.both(f.outside("secret.safetensors", b""), f.run("gpt", f.symlink("model.safetensors", "secret.safetensors"))))
c("export-config-wrong-type", "export run dest", f.run("gpt", f.toml_set("model", "n_layer", [1])))
c("runs-missing-folder", "runs nosuch")
c("runs-folder-is-file", "runs afile", f.files(afile="x"))
c("runs-empty-folder-ok", "runs adir", f.files(adir=None), OK)
c("runs-summary-wrong-type", "runs runs", f.run("gpt", f.json_set("summary.json", "steps", "many"), name="runs/a"),
  TOLERANT)
c("runs-summary-garbage", "runs runs", f.run("gpt", f.write("summary.json", f.BINARY), name="runs/a"), TOLERANT)
c("runs-config-wrong-type", "runs runs", f.run("gpt", f.toml_set(None, "dataset", 42), name="runs/a"), TOLERANT)
c("runs-metrics-garbage", "runs runs", f.run("gpt", f.write("metrics.jsonl", '{"step": "x"}\nnot json\n'),
                                             name="runs/a"), TOLERANT)
c("runs-symlink-loop", "runs runs", f.both(f.run("gpt", name="runs/a"), f.in_case(f.runs_loop)), TOLERANT)
c("card-summary-wrong-type", "card run", f.run("gpt", f.json_set("summary.json", "steps", "many")), TOLERANT)
c("card-summary-list", "card run", f.run("gpt", f.json_set("summary.json", "best_val_loss", [1, 2])), TOLERANT)
c("card-config-json-garbage", "card run", f.run("gpt", f.write("config.json", f.BINARY)), TOLERANT)
c("card-config-json-huge-vocab", "card run",
  f.run("gpt", f.json_set("config.json", "architecture.vocab_size", 50_000_000)), TOLERANT)
c("card-config-wrong-type", "card run", f.run("gpt", f.toml_set("train", "max_steps", "many")))
c("card-eval-json-wrong-type", "card run", f.run("gpt", f.write("eval.json", '{"val_loss": "low", "perplexity": []}')),
  TOLERANT)
c("card-readme-is-folder", "card run", f.run("gpt", f.make_dir("README.md")))
c("card-brackets-ok", "card 'a [bold] run'", f.run("gpt", name="a [bold] run"), OK)
c("card-readme-symlink-outside", "card run",
  f.both(f.outside("victim.txt", "keep me"), f.run("gpt", f.symlink("README.md", "victim.txt"))),
  check=lambda d: None if (d / "victim.txt").read_text() == "keep me" else "overwrote a file outside the run")
c("audit-n-zero", "audit run --n 0", GPT)
c("audit-n-negative", "audit run --n -3", GPT)
c("audit-n-huge", "audit run --n 1000000000", GPT)
c("vary-seed-huge", "vary run ok.png --no-sign --n 2 --seed 100000000000000000000000", VI(("ok.png", f.GOOD_PNG)))
c("interpolate-seed-huge", "interpolate run --no-sign --seed 100000000000000000000000", VAE)
c("audit-seed-huge", "audit run --n 2 --seed 100000000000000000000000", GPT)

# -- demo, verify, detect ---------------------------------------------------------------------------------------
c("demo-minutes-negative", "demo --minutes -1 --out out")
c("demo-minutes-nan", "demo --minutes nan --out out")
c("demo-minutes-inf", "demo --minutes inf --out out")
c("demo-out-existing-file", "demo --minutes 0.05 --out afile", f.files(afile="x"))
c("verify-missing-file", "verify missing.png", expect=VERDICT)
c("verify-bomb-png", "verify bomb.png", f.files(**{"bomb.png": f.png_bomb()}), VERDICT)
c("verify-truncated-png", "verify cut.png", f.files(**{"cut.png": f.png_truncated()}), VERDICT)
c("verify-empty-file", "verify empty.txt", f.files(**{"empty.txt": ""}), VERDICT)
c("verify-invalid-utf8-txt", "verify bad.txt", f.files(**{"bad.txt": f.INVALID_UTF8}), VERDICT)
c("verify-folder", "verify adir", f.files(adir=None), VERDICT)
c("verify-symlink-loop", "verify a.png", f.in_case(f.link_loop), VERDICT)
c("verify-runs-is-file", "verify ok.png --runs afile", f.files(**{"ok.png": f.GOOD_PNG, "afile": "x"}), VERDICT)
c("verify-run-not-a-run", "verify ok.txt --run adir", f.files(**{"ok.txt": "hello", "adir": None}), VERDICT)
c("verify-c2pa-sidecar-garbage", "verify ok.txt", f.files(**{"ok.txt": "hi", "ok.txt.c2pa": f.BINARY}), VERDICT)
c("verify-huge-sparse-txt", "verify big.txt", f.sparse("big.txt", 20 * 2**30), VERDICT)
c("detect-window-negative", "detect doc.txt --run run --window -1", f.both(GPT, f.files(**{"doc.txt": "to be or not"})))
c("detect-window-huge-ok", "detect doc.txt --run run --window 1000000000000",
  f.both(GPT, f.files(**{"doc.txt": "to be or not"})), OK)
c("detect-empty-file", "detect empty.txt --run run", f.both(GPT, f.files(**{"empty.txt": ""})))
c("detect-binary-file", "detect bin.txt --run run", f.both(GPT, f.files(**{"bin.txt": f.BINARY})))
c("detect-invalid-utf8", "detect bad.txt --run run", f.both(GPT, f.files(**{"bad.txt": f.INVALID_UTF8})))
c("detect-missing-file", "detect missing.txt --run run", GPT)
c("detect-folder", "detect adir --run run", f.both(GPT, f.files(adir=None)))
c("detect-image-run", "detect doc.txt --run run", f.both(VAE, f.files(**{"doc.txt": "hello"})))
c("detect-stdin-dash", "detect - --run run", GPT, stdin=b"to be or not to be")  # files only: "-" is a name
c("detect-run-missing", "detect doc.txt --run nosuch", f.files(**{"doc.txt": "hello"}))
c("detect-release-key-wrong-type", "detect doc.txt --run run",
  f.both(f.run("gpt", f.json_set("release.json", "text_key", [1])), f.files(**{"doc.txt": "to be or not"})))

# -- fill, embed, complete (text verbs) -----------------------------------------------------------------------------
BERT = f.run("bert")
c("fill-no-mask", "fill run 'no mask here'", BERT)
c("fill-empty-text", "fill run ''", BERT)
c("fill-top-k-zero", "fill run 'to be [MASK]' --top-k 0", BERT)
c("fill-top-k-negative", "fill run 'to be [MASK]' --top-k -2", BERT)
c("fill-top-k-huge-ok", "fill run 'to be [MASK]' --top-k 1000000000", BERT, OK)
c("fill-text-too-long", f"fill run '{'word ' * 4000}[MASK]'", BERT)
c("fill-gpt-run", "fill run 'to be [MASK]'", GPT)
c("embed-file-missing", "embed run missing.txt --out e.npy", BERT)
c("embed-file-empty", "embed run empty.txt --out e.npy", f.both(BERT, f.files(**{"empty.txt": ""})))
c("embed-file-binary", "embed run bin.txt --out e.npy", f.both(BERT, f.files(**{"bin.txt": f.BINARY})))
c("embed-file-invalid-utf8", "embed run bad.txt --out e.npy", f.both(BERT, f.files(**{"bad.txt": f.INVALID_UTF8})))
c("embed-out-existing", "embed run ok.txt --out ok.txt", f.both(BERT, f.files(**{"ok.txt": "hello\n"})))
c("embed-out-is-folder", "embed run ok.txt --out adir", f.both(BERT, f.files(**{"ok.txt": "hello\n", "adir": None})))
c("embed-out-parent-missing-ok", "embed run ok.txt --out no/such/e.npy", f.both(BERT, f.files(**{"ok.txt": "hi\n"})),
  OK)  # makes the folders
c("embed-gpt-run", "embed run ok.txt --out e.npy", f.both(GPT, f.files(**{"ok.txt": "hello\n"})))
PY = f.files(**{"code.py": "import os\n\ndef main():\n    return os.getcwd()\n"})
c("complete-file-missing", "complete run missing.py --line 2", GPT)
c("complete-line-zero", "complete run code.py --line 0", f.both(GPT, PY))
c("complete-line-negative", "complete run code.py --line -2", f.both(GPT, PY))
c("complete-line-past-end", "complete run code.py --line 1000", f.both(GPT, PY))
c("complete-binary-file", "complete run bin.py --line 2", f.both(GPT, f.files(**{"bin.py": f.BINARY})))
c("complete-invalid-utf8-file", "complete run bad.py --line 2", f.both(GPT, f.files(**{"bad.py": f.INVALID_UTF8})))
c("complete-stdin-invalid-utf8", "complete run -", GPT, stdin=f.INVALID_UTF8)
c("complete-stdin-empty-ok", "complete run -", GPT, OK)  # completes the start of a file
c("complete-max-new-tokens-negative", "complete run code.py --line 2 --max-new-tokens -1", f.both(GPT, PY))
c("complete-max-new-tokens-huge", "complete run code.py --line 2 --max-new-tokens 10000000000", f.both(GPT, PY))
c("complete-temperature-nan", "complete run code.py --line 2 --temperature nan", f.both(GPT, PY))
c("complete-no-repeat-negative", "complete run code.py --line 2 --no-repeat-ngram -1", f.both(GPT, PY))
c("complete-seed-huge", "complete run code.py --line 2 --temperature 0.8 --seed 100000000000000000000000",
  f.both(GPT, PY))
c("complete-bert-run", "complete run code.py --line 2", f.both(BERT, PY))
c("complete-file-is-folder", "complete run adir --line 2", f.both(GPT, f.files(adir=None)))

# -- data list, keys init, config show / list -----------------------------------------------------------------------
c("data-list-extra-arg", "data list extra")
c("data-list-ok", "data list --json", expect=OK)
c("keys-init-home-is-file", "keys init --name tester", f.files(homefile="x"), env={"GENLAB_HOME": "{d}/homefile"})
c("keys-init-existing", "keys init --name tester",
  f.files(**{f"home__keys__{n}.pem": "x" for n in ("key", "chain", "root")}), env={"GENLAB_HOME": "{d}/home"})
c("sample-sign-identity-garbage", "sample run --n 2 --out o", f.both(VAE, f.files(**{"home__keys__key.pem": "x",
  "home__keys__chain.pem": f.BINARY, "home__keys__root.pem": ""})), env={"GENLAB_HOME": "{d}/home"})
c("keys-init-name-blank", "keys init --name '   '", env={"GENLAB_HOME": "{d}/home"})  # '' means the default
c("keys-init-name-huge", f"keys init --name {'x' * 5000}", env={"GENLAB_HOME": "{d}/home"})
CASES.append(Case("keys-init-name-newline", ("keys", "init", "--name", "a\nb"), expect=TOLERANT,
                   env={"GENLAB_HOME": "{d}/home"}))
c("config-show-unknown-family", "config show nosuch")
c("config-show-brackets", "config show '[bold]gpt[/bold]'", expect=ERR_SAYING("[bold]gpt[/bold]"))
c("config-show-empty", "config show ''")
c("config-list-extra-arg", "config list extra")
c("config-show-ok", "config show diffusion --json", expect=OK)
