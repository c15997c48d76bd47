# The two commands a newcomer needs: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KPLAB := $(VENV)/bin/kplab
# The CPU wheel installs from the local store in seconds; an unpinned torch pulls a CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: setup browser demo test bench mutate clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN) -e '.[dev]'
	touch $@

demo: setup
	$(KPLAB) train --preset fast --out runs/demo
	$(KPLAB) evaluate runs/demo --out runs/demo/eval

test: setup browser
	$(PY) -m pytest -q

# The page's tests drive Debian's chromium through its chromedriver; install them where missing
# (as root, e.g. on CI). Without them the browser tests skip, except under CI=true, where they fail.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver) \
		|| echo "chromium could not be installed: the browser tests will be skipped (outside CI)"; \
	fi

bench: setup
	$(PY) bench/faces_presets.py

# Mutation testing of the core modules with the fast unit tests (not part of `make test`: it takes long).
# mutmut 3 forks each mutant from one warm test process, so torch is imported once, not per mutant.
MUTMUT_PIN := mutmut==3.8.1

mutate: setup
	$(PY) -m pip install -q $(MUTMUT_PIN)
	$(PY) mutation/run.py

clean:
	rm -rf $(VENV) runs mutants .pytest_cache .hypothesis
