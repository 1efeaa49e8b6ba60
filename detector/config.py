"""Defaults in one place, so the CLI, training and tests agree on them."""

from __future__ import annotations

from pathlib import Path

#: Side of the square face crop the model takes (uint8 RGB).
IMAGE_SIZE = 224
#: Frames sampled per video, evenly spaced over its duration.
FRAMES_PER_VIDEO = 32
#: Face box is grown by this factor before cropping, so the blend boundary around the face is visible.
CROP_MARGIN = 1.3
#: Frames are downscaled so their longer side is at most this before MTCNN (it is slow on big frames).
DETECT_MAX_SIDE = 640
#: Faces whose shorter box side (in original pixels) is smaller than this are ignored.
MIN_FACE_SIZE = 40
#: MTCNN confidence below which a detection is dropped.
MIN_FACE_CONFIDENCE = 0.9
#: Largest number of face tracks kept per video (the largest faces win).
MAX_FACES = 8
#: Two detections in consecutive sampled frames belong to one track when their IoU is at least this.
TRACK_IOU = 0.3
#: Fake-probability threshold when the model card does not carry one.
DEFAULT_THRESHOLD = 0.5
#: Batch size for model inference.
BATCH_SIZE = 32
#: Number of most suspicious frames explained with Grad-CAM.
GRADCAM_FRAMES = 4
#: Backbone of the task model when none is named.
DEFAULT_BACKBONE = "efficientnetv2-b0"

#: Ray engine: attempts at a file beyond the first when its worker process dies or overruns (Ray retries forever).
RAY_RETRIES = 1
#: Ray engine: seconds one file may take to download, decode and detect before its worker process is ended.
RAY_FILE_TIMEOUT = 600.0
#: Ray engine: videos whose crops one model actor scores in one call.
RAY_VIDEOS_PER_CALL = 8
#: Ray engine: model actors (each holds the model once).
RAY_SCORERS = 1
#: Ray engine: CPUs reserved per model actor and per writing task (the model waits on face detection most of the
#: time, and writing is light), so a small node still runs one decode-and-detect task per core.
RAY_SCORER_CPUS = 0.5
RAY_WRITER_CPUS = 0.25
#: Ray engine: the listing is cut into at most this many blocks (one file per block below that).
RAY_MAX_BLOCKS = 10_000

#: Where the shipped model lives: TF Serving layout ``<name>/<version>/`` plus card and .keras beside it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "deepfake"
SAVED_MODEL_ROOT = PROJECT_ROOT / "saved_model"
DEFAULT_MODEL_DIR = SAVED_MODEL_ROOT / MODEL_NAME

#: Frames larger than this many pixels (100 MP, beyond 8K video) are refused as too large to decode safely.
MAX_PIXELS = 100_000_000
