# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch/torchvision as pinned here come from this machine's local wheels (no multi-GB download).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
OUT ?= runs/tour

.PHONY: demo test venv venv-dev browser clean

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_SPEC)
	touch $@

$(VENV)/.base: $(VENV)/.torch pyproject.toml
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.base
venv-dev: $(VENV)/.dev

## demo: create .venv, install cnnlab, run the offline tour on the bundled model and photos
demo: venv
	$(VENV)/bin/cnnlab tour --out $(OUT) --force

## browser: headless Chromium for the explorer's browser test (Debian package; skipped if impossible)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will skip"; \
	  else echo "note: chromium missing and not root; the browser test will skip"; fi; }

## test: create/refresh .venv with the dev extras, then run the test suite
test: venv-dev browser
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
