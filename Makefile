# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast install install-dev migrate bench soak mutations clean chromium

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
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) -m sttproject.server -b $(HOST) -p $(PORT) sttproject.asgi:application

# Browser tests drive Debian's Chromium with Playwright (no browser download).
# (fonts-noto-cjk: Korean text in the screenshots, not boxes)
chromium:
	@{ command -v chromium >/dev/null && fc-list 2>/dev/null | grep -qi "noto sans cjk"; } || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; } || \
	  echo "chromium is not installed: browser tests will be skipped (apt-get install chromium fonts-noto-cjk)"

test: install-dev chromium
	NO_GCE_CHECK=true $(PY) -m pytest $(PYTEST_ARGS)

# After every change (under 3 minutes on 2 cores): everything but real-time browser, multi-process,
# real-server, model and slow tests. `make test` and CI run them all.
test-fast: install-dev
	NO_GCE_CHECK=true $(PY) -m pytest -q -p no:cacheprovider -m "not model and not browser and not multiprocess and not server and not slow" $(PYTEST_ARGS)

# Timing goals live here, printed as numbers (tests check correctness only). Loopback only.
bench: install-dev
	$(PY) bench/latency.py tests/data/en/beckett.wav --lang en-US
	$(PY) bench/latency.py tests/data/ko/kspon_long.wav --lang ko-KR --cer
	$(PY) bench/stream_pull.py tests/data/ko/kspon_long.wav --lang ko-KR --cer
	$(PY) bench/translation.py
	$(PY) bench/accuracy.py
	$(PY) bench/accuracy.py --model tiny.en --sets en
	$(PY) bench/load.py --levels 1 2 4 8
	$(PY) bench/load.py --model tiny.en --levels 1 4 8 16
	STT_MAX_SESSIONS=0 $(PY) bench/load.py --scripted --levels 100 200 300
	$(PY) bench/load.py --conversations --levels 2 3 4
	$(PY) bench/speakers.py
	$(PY) bench/speaker_eval.py live --part held-out --pace 0.1
	$(PY) bench/speaker_eval.py live --part real --pace 0.1
	$(PY) bench/speaker_eval.py enrol --part held-out
	$(PY) bench/upload.py
	$(PY) bench/background.py

# Every claim's test must fail with its feature switched off (tests/mutations.py, docs/reliability.md).
mutations: install-dev
	NO_GCE_CHECK=true $(PY) tests/mutations.py $(MUTATIONS_ARGS)

# Bounded soak (default 10 minutes): sessions, finals received vs stored, errors, RSS, threads.
soak: install-dev
	$(PY) bench/soak.py

clean:
	rm -rf $(VENV) staticfiles
