# Two commands set everything up on a fresh machine:
#   make test   - create .venv on first use, then run every test (package, sync, grading round trips, which run every notebook)
#   make book   - create .venv on first use, then build the HTML book into _build/html
# Both accept a PyTorch spec, e.g.  make test TORCH=torch==2.13.0  (default: plain torch).

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch
# pytest-xdist workers; the GPU job uses 1 so notebook kernels do not share the GPU.
PYTEST_WORKERS ?= 2
# The round trips grade the instructor notebooks under this second CPU kernel
# (ATEN_CPU_CAPABILITY); `make book` runs the student versions under the native one.
# Empty: native for all.
SOLUTIONS_CPU_KERNEL ?= default
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
# nbgrader starts `alembic` in a subprocess: the environment's bin/ must be on PATH.
RUN    := PATH="$(BIN):$$PATH"

.PHONY: env test test-oldest book instructors-book browser-test chapters translations font benchmark robustness clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Part 5 against the oldest transformers, sentence-transformers and peft that
# requirements.txt admits (pinned in requirements-oldest.txt), in a second environment:
# their tests and the two fine-tuning notebooks. `make test` in a fresh environment gets
# the newest releases. PyTorch stays the build TORCH names (a constraint, so no
# dependency can swap it for a CUDA build).
OLDEST_VENV ?= .venv-oldest
PART5_TESTS := tests/unit/train/test_fine_tuning.py tests/unit/models/test_parameter_efficient_fine_tuning.py tests/unit/data/test_sentiment_and_pretrained.py \
	tests/checks/test_checks_fine_tuning.py tests/checks/test_checks_parameter_efficient_fine_tuning.py
PART5_NOTEBOOKS := solutions/pretraining/fine_tuning.ipynb \
	solutions/pretraining/parameter_efficient_fine_tuning.ipynb

test-oldest:
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install --quiet $(TORCH)
	$(OLDEST_VENV)/bin/pip freeze | grep -i '^torch==' > $(OLDEST_VENV)/torch-constraint.txt
	$(OLDEST_VENV)/bin/pip install --quiet -c $(OLDEST_VENV)/torch-constraint.txt \
		-c requirements-oldest.txt -r requirements.txt
	$(OLDEST_VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(OLDEST_VENV)/bin/pip list 2>/dev/null | grep -iE '^(torch|transformers|sentence-transformers|peft) '
	PATH="$(abspath $(OLDEST_VENV))/bin:$$PATH" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 \
		$(OLDEST_VENV)/bin/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) \
		--dist loadfile --nbval-lax --nbval-current-env $(PART5_TESTS) $(PART5_NOTEBOOKS)

# Two workers on two cores: one math thread per process, or kernels fight for the cores
# (measured: small RNNs ran up to 28 times slower with two threads each).
# ruff first (seconds: lint and layout, configured in pyproject.toml), then pytest.
# Every instructor notebook runs inside its section's grading round trip
# (tests/grading/grading_harness.py) under SOLUTIONS_CPU_KERNEL, each cell checked as
# nbval would; `make book` runs every student version natively. nbval itself stays for
# one notebook at a time while you work.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(RUN) OMP_NUM_THREADS=1 \
		SEQBOOK_SOLUTIONS_CPU_CAPABILITY=$(SOLUTIONS_CPU_KERNEL) $(BIN)/python -m pytest \
		-n $(PYTEST_WORKERS) --dist loadfile tests

# Both editions. The Chinese one (tools/translation.py) has the same code cells as the
# English one, so its build finds every notebook's outputs in the same execution cache:
# the notebooks run once, not once per language. It lands in _build/html/zh_CN.
ZH_SOURCE := _build/zh_CN-source
book: $(STAMP)
	$(RUN) $(BIN)/python tools/execute_book.py
	$(RUN) $(BIN)/jupyter-book build . --all -W -n --keep-going
	$(RUN) $(BIN)/python tools/translation.py source $(ZH_SOURCE)
	$(RUN) $(BIN)/jupyter-book build $(ZH_SOURCE) --all -W -n --keep-going
	rm -rf _build/html/zh_CN
	cp -r $(ZH_SOURCE)/_build/html _build/html/zh_CN
	$(BIN)/python tools/check_public_build.py _build/html

# The instructors' edition (solutions, hidden tests, mark schemes) into _build/instructors.
# Not for students: never publish it. INSTRUCTORS_FLAGS=--no-execute skips running cells.
instructors-book: $(STAMP)
	$(RUN) $(BIN)/python tools/instructors_edition.py $(INSTRUCTORS_FLAGS)

# Read the built book (run `make book` first) in Debian's headless Chromium, driven by
# Playwright (which downloads no browser): tests/browser, screenshots in _build/screenshots.
browser-test: $(STAMP)
	$(RUN) BOOK_BROWSER_TESTS=1 $(BIN)/python -m pytest tests/browser

# Regenerate the student versions in chapters/ from solutions/ (nbgrader + tagging), and
# their Chinese versions in zh_CN/chapters/ from those and locale/zh_CN.
chapters: $(STAMP)
	$(RUN) $(BIN)/python tools/regenerate_chapters.py
	$(RUN) $(BIN)/python tools/translation.py notebooks

# After changing English text: new or changed messages in locale/zh_CN (changed ones
# keep their old translation, marked fuzzy), then the list of what to translate.
# CONTRIBUTING.md explains the workflow.
translations: $(STAMP)
	$(RUN) $(BIN)/python tools/translation.py update
	$(RUN) $(BIN)/python tools/translation.py check || true

# Re-subset the Chinese font to the characters the book uses (needs Debian's
# fonts-noto-cjk, only where you run this; the subset is committed).
NOTO_CJK ?= /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
font: $(STAMP)
	$(BIN)/python tools/cjk_font.py --source $(NOTO_CJK)

# Time every notebook and measure its peak memory; rewrites back/runtimes.md.
benchmark: $(STAMP)
	$(RUN) $(BIN)/python tools/benchmark.py

# Every claim of the book under 3 seeds x the CPU kernels this processor has x 1 and 2
# threads (sampled; PLAN=full for all): rewrites back/robustness.json and .md and each
# section's "claims on other machines" cell (~40 min; run `make chapters` afterwards).
PLAN ?= sample
robustness: $(STAMP)
	$(RUN) $(BIN)/python tools/robustness.py --plan $(PLAN)
	$(RUN) $(BIN)/python tools/claim_notes.py

clean:
	rm -rf _build
