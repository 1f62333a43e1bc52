# Two commands matter: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
HOST   ?= 127.0.0.1
PORT   ?= 5000
MINUTES ?= 30

.PHONY: run test lint train eval bench fuzz soak browser clean

# The venv is rebuilt whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

run: $(VENV)/.installed
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
