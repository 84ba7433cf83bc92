# Two commands set everything up on a fresh machine:
#   make test   - create .venv on first use, then run every test (package, sync, grading, nbval)
#   make book   - create .venv on first use, then build the HTML book into _build/html
# Both accept a PyTorch spec, e.g.  make test TORCH=torch==2.13.0  (default: plain torch).

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch
# pytest-xdist workers; the GPU job uses 1 so notebook kernels do not share the GPU.
PYTEST_WORKERS ?= 2
# nbval runs the instructor notebooks under this second CPU kernel (ATEN_CPU_CAPABILITY)
# and the student versions under the native one (tests/conftest.py); empty: native for all.
SOLUTIONS_CPU_KERNEL ?= default
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
# nbgrader starts `alembic` in a subprocess: the environment's bin/ must be on PATH.
RUN    := PATH="$(BIN):$$PATH"

.PHONY: env test test-latest book instructors-book browser-test chapters benchmark robustness clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Part 5 against the newest transformers, sentence-transformers and peft (make test uses
# whatever `pip install -r requirements.txt` resolved, and requirements.txt admits both),
# in a second environment; PyTorch stays the build TORCH names (a constraint, so no
# dependency can swap it for a CUDA build).
LATEST_VENV ?= .venv-latest
PART5_TESTS := tests/test_fine_tuning.py tests/test_lora.py tests/test_sentiment_pretrained.py \
	tests/test_checks_fine_tuning.py tests/test_checks_lora.py
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install --quiet $(TORCH)
	$(LATEST_VENV)/bin/pip freeze | grep -i '^torch==' > $(LATEST_VENV)/torch-constraint.txt
	$(LATEST_VENV)/bin/pip install --quiet -c $(LATEST_VENV)/torch-constraint.txt \
		-r requirements.txt "transformers>=5" "sentence-transformers>=6" "peft>=0.21"
	$(LATEST_VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(LATEST_VENV)/bin/pip list 2>/dev/null | grep -iE '^(torch|transformers|sentence-transformers|peft) '
	HF_HUB_OFFLINE=1 $(LATEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(PART5_TESTS)

# Two workers on two cores: one math thread per process, or kernels fight for the cores
# (measured: small RNNs ran up to 28 times slower with two threads each).
test: $(STAMP)
	$(RUN) OMP_NUM_THREADS=1 \
		SEQBOOK_SOLUTIONS_CPU_CAPABILITY=$(SOLUTIONS_CPU_KERNEL) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --nbval-lax --nbval-current-env \
		tests solutions chapters

book: $(STAMP)
	$(RUN) $(BIN)/jupyter-book build . --all -W -n --keep-going
	$(BIN)/python tools/check_public_build.py _build/html

# The instructors' edition (solutions, hidden tests, mark schemes) into _build/instructors.
# Not for students: never publish it. INSTRUCTORS_FLAGS=--no-execute skips running cells.
instructors-book: $(STAMP)
	$(RUN) $(BIN)/python tools/instructors_edition.py $(INSTRUCTORS_FLAGS)

# Read the built book (run `make book` first) in Debian's headless Chromium, driven by
# Playwright (which downloads no browser): tests/browser, screenshots in _build/screenshots.
browser-test: $(STAMP)
	$(RUN) BOOK_BROWSER_TESTS=1 $(BIN)/python -m pytest tests/browser

# Regenerate the student versions in chapters/ from solutions/ (nbgrader + tagging).
chapters: $(STAMP)
	$(RUN) $(BIN)/python tools/regenerate_chapters.py

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
