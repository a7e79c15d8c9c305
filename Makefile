# The README's two commands: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint format bench clean system-deps

# The host environment: edgectl, the agent, TensorFlow (converter only), Treelite/TL2cgen, XGBoost.
$(VENV)/.host: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[host]"
	touch $@

$(VENV)/.test: $(VENV)/.host
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[host,test]"
	touch $@

# sshd, cross compilers, qemu-user, debootstrap for the test boards (installed when root).
system-deps:
	tests/boards/system_deps.sh

demo: $(VENV)/.host
	$(BIN)/edgectl demo

test: $(VENV)/.test system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

test-fast: $(VENV)/.test
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# onnxruntime, onnxmltools and onnx: the comparisons the benchmarks make beside the agent's runtimes.
$(VENV)/.bench: $(VENV)/.host
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[host,bench]"
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/stage1_latency.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
