# The README's commands. `make demo` separates the bundled example; `make test` runs the tests.
PYTHON ?= python3

.PHONY: install demo test bench

install:
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[test]"

demo: install
	septool separate examples/audio/demo.ogg -o separated

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m pip install -q --no-deps openunmix
	$(PYTHON) benchmarks/separate_speed.py
