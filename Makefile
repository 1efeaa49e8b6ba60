# Deepfake video detector: set-up, demo and tests from a clean clone.
# Needs python3 (3.11) with venv support and ffmpeg on PATH (apt-get install ffmpeg python3-venv).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pip runs again only when a requirements file changes
STAMP := $(VENV)/.installed
RAY_STAMP := $(VENV)/.installed-ray
DEMO_DIR := demo
DEMO_OUT := results/demo
PORT ?= 8000

.PHONY: help venv ray demo test test-fast lint check-ffmpeg serve

help:
	@echo "make venv       create $(VENV) and install requirements.txt, -dev, -train and -nodeps (the package's pins)"
	@echo "make ray        add the optional Ray Data engine (requirements-ray*.txt) to $(VENV): app.py --engine ray"
	@echo "make demo       generate demo media in $(DEMO_DIR)/ and scan it into $(DEMO_OUT)/"
	@echo "make test       ruff, then the whole test suite (unit, slow and end-to-end)"
	@echo "make test-fast  the quick unit tests only (-m 'not e2e and not slow'), under a minute"
	@echo "make lint       ruff check . (settings in pyproject.toml)"
	@echo "make serve      upload page and REST API on http://127.0.0.1:$(PORT)/ (PORT=8000)"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-train.txt requirements-nodeps.txt
	@$(PYTHON) -m venv $(VENV) || { \
		echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt \
		-r requirements-train.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	@touch $@

ray: $(RAY_STAMP)

$(RAY_STAMP): $(STAMP) requirements-ray.txt requirements-ray-test.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt -r requirements-ray-test.txt \
		-c requirements.txt
	@touch $@

check-ffmpeg:
	@command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || { \
		echo "error: ffmpeg/ffprobe not found on PATH; install it: sudo apt-get install ffmpeg" >&2; exit 1; }

demo: venv check-ffmpeg
	$(PY) -m detector.demo $(DEMO_DIR)
	$(PY) app.py --input $(DEMO_DIR) --output $(DEMO_OUT) --quiet
	@for report in $(DEMO_OUT)/*/report.html; do echo "report: $$report"; done

test: venv check-ffmpeg lint
	$(PY) -m pytest -q

test-fast: venv check-ffmpeg
	$(PY) -m pytest -q -m "not e2e and not slow"

lint: venv
	$(VENV)/bin/ruff check .

serve: venv check-ffmpeg
	$(PY) app.py serve --port $(PORT)
