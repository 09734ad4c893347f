# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev migrate bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py prepare_models
	$(PY) manage.py check --deploy --fail-level ERROR >/dev/null || $(PY) manage.py check
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) sttproject.asgi:application

test: install-dev
	NO_GCE_CHECK=true $(PY) -m pytest $(PYTEST_ARGS)

bench: install-dev
	$(PY) bench/latency.py

clean:
	rm -rf $(VENV) staticfiles
