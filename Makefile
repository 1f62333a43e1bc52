# Two commands matter: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
HOST   ?= 127.0.0.1
PORT   ?= 5000
MINUTES ?= 30
WORKERS ?= 2

.PHONY: run cluster test lint train eval bench fuzz soak browser services clean

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

# Redis, $(WORKERS) workers and HAProxy on this machine, in the foreground (server/cluster.py): the balancer on
# HOST:PORT, the workers on 127.0.0.1:PORT+1.., Redis after them. Ctrl-C stops them all, the workers draining first.
cluster: $(VENV)/.serve services
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m server.cluster --workers $(WORKERS)

# Debian packages, installed when a binary is missing and we may (root, apt-get): $(1) binaries, $(2) packages.
define apt_install
	@$(foreach binary,$(1),test -x $(binary) &&) true || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2); \
	  else echo "$(2) missing: $(3) (apt-get install $(2))"; fi; }
endef

# Browser tests need chromium.
browser:
	$(call apt_install,/usr/bin/chromium,chromium,browser tests will be skipped)

# The cluster and its tests need redis-server and haproxy.
services:
	$(call apt_install,/usr/bin/redis-server /usr/sbin/haproxy,redis-server haproxy,cluster tests will be skipped)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: $(VENV)/.installed browser services lint
	$(BIN)/python -m pytest -q

train: $(VENV)/.installed
	$(BIN)/python -m training.train --data $(DATA) --out model/digits.keras
	$(BIN)/python -m training.train_reader --data $(DATA) --out model/reader.keras
	$(BIN)/python -m training.train_inkmap --data $(DATA) --out model/inkmap.keras
	$(BIN)/python -m training.train_reader --data $(DATA) --out model/row_reader.keras --inkmap model/inkmap.tflite \
	  --width 0.9 --joined 0.5 --scenes 9000 --epochs 14

eval: $(VENV)/.installed
	$(BIN)/python -m tools.evaluate --data $(DATA)
	$(BIN)/python -m tools.inkmap_check --data $(DATA)

bench: $(VENV)/.installed
	$(BIN)/python -m tests.bench.run

fuzz: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests/test_fuzz.py --hypothesis-profile=long

soak: $(VENV)/.installed
	$(BIN)/python -m tests.bench.soak --minutes $(MINUTES)

clean:
	rm -rf $(VENV) artifacts bench-results.json bench-results.png
