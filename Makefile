# Two commands matter: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
HOST   ?= 127.0.0.1
PORT   ?= 5000
MINUTES ?= 30

.PHONY: run test lint train eval bench fuzz soak browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# `make run` installs the server's packages only (0.35 GB, no TensorFlow); everything else installs them all
# (2.1 GB). Each is installed again whenever its requirements change.
$(VENV)/.serve: requirements-serve.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-serve.txt
	touch $@

$(VENV)/.installed: requirements.txt requirements-serve.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

run: $(VENV)/.serve
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m server

# Browser tests need Debian's chromium; install it when missing and we may (root, apt-get).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "chromium missing: browser tests will be skipped (apt-get install chromium)"; fi; }

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: $(VENV)/.installed browser lint
	$(BIN)/python -m pytest -q

train: $(VENV)/.installed
	$(BIN)/python -m training.train --data $(DATA) --out model/digits.keras

eval: $(VENV)/.installed
	$(BIN)/python -m tools.evaluate --data $(DATA)

bench: $(VENV)/.installed
	$(BIN)/python -m tests.bench.run

fuzz: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests/test_fuzz.py --hypothesis-profile=long

soak: $(VENV)/.installed
	$(BIN)/python -m tests.bench.soak --minutes $(MINUTES)

clean:
	rm -rf $(VENV) artifacts bench-results.json bench-results.png
