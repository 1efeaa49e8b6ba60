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

.PHONY: help venv ray demo test test-fast lint check-ffmpeg serve v3-crops v1 v1-trained v3-pack v3-backbone v3-head \
	v3-evaluate v3-export model-v3

help:
	@echo "make venv       create $(VENV) and install requirements.txt, -dev, -train and -nodeps (the package's pins)"
	@echo "make ray        add the optional Ray Data engine (requirements-ray*.txt) to $(VENV): app.py --engine ray"
	@echo "make demo       generate demo media in $(DEMO_DIR)/ and scan it into $(DEMO_OUT)/"
	@echo "make test       ruff, then the whole test suite (unit, slow and end-to-end)"
	@echo "make test-fast  the quick unit tests only (-m 'not e2e and not slow'), under a minute"
	@echo "make lint       ruff check . (settings in pyproject.toml)"
	@echo "make serve      upload page and REST API on http://127.0.0.1:$(PORT)/ (PORT=8000)"
	@echo "make model-v3   rebuild the shipped model (version 3) from DATA=$(DATA), step by step (docs/training.md)"

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

# ---------------------------------------------------------------------------------------------------------------------
# Rebuilding the shipped model, version 3 (docs/training.md says what each step does and how long it takes).
# Each step is a file target, so an interrupted rebuild resumes; 'make model-v3' runs them all. Nothing here writes
# saved_model/ unless MODEL_OUT=saved_model/deepfake is given.
DATA ?= ../shared/data
RUNS := runs
V1 ?= $(RUNS)/v1.keras
MODEL_OUT ?= $(RUNS)/v3_model
# the settings of version 3's two backbone runs (blocks 10-16 on cross-identity blends, no pool crop)
BACKBONE_RUN := --fold-steps 0 --final-steps 1500 --final-without-pool --sbi-share 1 --paired-share 0 \
	--cross-share 1 --freeze-until mbv2_block09_add --lr 3e-4 --batch-size 32

# 1. face crops with the scanner's own ingestion (resumable)
data_cache/videos/index.jsonl: | venv
	$(PY) -m training.prepare --real-dir $(DATA)/real_videos --out data_cache/videos --frames 40 --max-faces 3
data_cache/lfw/index.jsonl: | venv
	$(PY) -m training.prepare --real-dir $(DATA)/real_faces/lfw --limit-per-dir 2500 --out data_cache/lfw --frames 1 \
		--max-faces 1
data_cache/labeled/index.jsonl: | venv
	$(PY) -m training.prepare --manifest $(DATA)/labeled/labels.csv --out data_cache/labeled --frames 32 \
		--max-faces 3 --val-fraction 1.0
data_cache/pool/index.jsonl: | venv
	$(PY) -m training.prepare --manifest $(DATA)/labeled_pool/labels.csv --out data_cache/pool --frames 16 \
		--max-faces 2 --val-fraction 0
v3-crops: data_cache/videos/index.jsonl data_cache/lfw/index.jsonl data_cache/labeled/index.jsonl \
	data_cache/pool/index.jsonl

# 2. version 1 (blocks 1-9 of version 3's backbone, and the start of its runs): from this repository's history when
#    it has it, else trained again on self-blends (a linear head on frozen features, then one fine-tuning epoch)
$(V1): | venv
	@mkdir -p $(dir $@)
	git show 884b8b3:saved_model/deepfake/model.keras > $@.part && mv $@.part $@ || { rm -f $@.part; \
		echo "error: this clone lacks version 1 in its history: 'make v1-trained' trains it again" >&2; exit 1; }
v1-trained: data_cache/videos/index.jsonl data_cache/lfw/index.jsonl data_cache/labeled/index.jsonl
	$(PY) -m training.train --mode features --data data_cache/videos --data data_cache/lfw \
		--eval-data data_cache/labeled --backbone mobilenetv2 --weights imagenet --feature-pairs 1500 --epochs 30 \
		--out $(RUNS)/features1500_mobilenetv2
	$(PY) -m training.train --data data_cache/videos --data data_cache/lfw --eval-data data_cache/labeled \
		--backbone mobilenetv2 --weights imagenet --init $(RUNS)/features1500_mobilenetv2/best.keras --epochs 4 \
		--steps-per-epoch 125 --batch-size 16 --lr 1e-4 --out $(RUNS)/mnv2_lpft
	cp $(RUNS)/mnv2_lpft/best.keras $(V1)
v1: $(V1)

# 3. the pack: the pool's crops, the other real faces with their landmarks, the labelled eval crops
packs/main/meta.json: v3-crops
	$(PY) -m training.pack --pool data_cache/pool --pool-manifest $(DATA)/labeled_pool/labels.csv \
		--real data_cache/videos --real data_cache/lfw --eval data_cache/labeled --per-track 8 \
		--max-real-items 1000 --out packs/main
v3-pack: packs/main/meta.json

# 4. the backbone: two runs of 48,000 / 51,200 cross-identity blends from version 1 (13 minutes each on 2 cores)
$(RUNS)/cross_b10/final.weights.h5: packs/main/meta.json $(V1)
	$(PY) -m training.recipe --pack packs/main --init $(V1) --out $(RUNS)/cross_b10 $(BACKBONE_RUN)
$(RUNS)/cross_b10b/final.weights.h5: $(RUNS)/cross_b10/final.weights.h5
	$(PY) -m training.recipe --pack packs/main --init $(V1) --init-weights $< --out $(RUNS)/cross_b10b \
		$(BACKBONE_RUN) --final-steps 1600 --seed 1
v3-backbone: $(RUNS)/cross_b10b/final.weights.h5

# 5. the statistics head on the pool, leave-one-method-out folds, the threshold and the task model
$(RUNS)/stats_head_v3/model.keras: $(RUNS)/cross_b10b/final.weights.h5
	$(PY) -m training.stats_head --pack packs/main --init $(V1) --init-weights $< --keep-top --prior-images 105200 \
		--out $(RUNS)/stats_head_v3
v3-head: $(RUNS)/stats_head_v3/model.keras

# 6. the labelled set of record scanned with the candidate, as it is and re-encoded (CRF 35; 360 lines at CRF 23)
$(RUNS)/v3_candidate/card.json: $(RUNS)/stats_head_v3/model.keras
	$(PY) -m training.export --checkpoint $< --run $(RUNS)/stats_head_v3 --version 3 --out $(RUNS)/v3_candidate
$(RUNS)/labeled_crf35/labels.csv: | venv
	$(PY) -m training.degrade --manifest $(DATA)/labeled/labels.csv --out $(RUNS)/labeled_crf35 --crf 35
$(RUNS)/labeled_360p/labels.csv: | venv
	$(PY) -m training.degrade --manifest $(DATA)/labeled/labels.csv --out $(RUNS)/labeled_360p --height 360 --crf 23
$(RUNS)/eval_v3/summary.json: $(RUNS)/v3_candidate/card.json
	$(PY) app.py evaluate $(DATA)/labeled/labels.csv --model $(RUNS)/v3_candidate --output $(RUNS)/eval_v3 --quiet
$(RUNS)/eval_v3_crf35/summary.json: $(RUNS)/v3_candidate/card.json $(RUNS)/labeled_crf35/labels.csv
	$(PY) app.py evaluate $(RUNS)/labeled_crf35/labels.csv --model $(RUNS)/v3_candidate \
		--output $(RUNS)/eval_v3_crf35 --quiet
$(RUNS)/eval_v3_360p/summary.json: $(RUNS)/v3_candidate/card.json $(RUNS)/labeled_360p/labels.csv
	$(PY) app.py evaluate $(RUNS)/labeled_360p/labels.csv --model $(RUNS)/v3_candidate \
		--output $(RUNS)/eval_v3_360p --quiet
v3-evaluate: $(RUNS)/eval_v3/summary.json $(RUNS)/eval_v3_crf35/summary.json $(RUNS)/eval_v3_360p/summary.json

# 7. the model with its card (the folds' figures, the threshold, the labelled figures) in TF Serving's layout
v3-export: v3-evaluate
	$(PY) -m training.export --checkpoint $(RUNS)/stats_head_v3/model.keras --run $(RUNS)/stats_head_v3 --version 3 \
		--evaluation $(RUNS)/eval_v3/summary.json --degraded h264_crf35=$(RUNS)/eval_v3_crf35/summary.json \
		--degraded 360p=$(RUNS)/eval_v3_360p/summary.json --out $(MODEL_OUT)
model-v3: v3-export
