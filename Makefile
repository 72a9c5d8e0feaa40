# Shortcuts for `python3 dev.py TASK`, which does the work on any platform (no make needed).
PYTHON ?= python3

.PHONY: demo test docs bench test-minimum clean

demo:
	$(PYTHON) dev.py demo

test:
	$(PYTHON) dev.py test

docs:
	$(PYTHON) dev.py docs

bench:
	$(PYTHON) dev.py bench

test-minimum:
	$(PYTHON) dev.py test-minimum

clean:
	rm -rf .venv .venv-minimum site .mypy_cache .ruff_cache .pytest_cache .hypothesis
