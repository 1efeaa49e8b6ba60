"""Defaults in one place, so the CLI, training and tests agree on them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Side of the square face crop the model takes (uint8 RGB).
IMAGE_SIZE = 224
#: Frames sampled per video, evenly spaced over its duration.
FRAMES_PER_VIDEO = 32
#: Face box is grown by this factor before cropping, so the blend boundary around the face is visible.
CROP_MARGIN = 1.3
#: Frames are downscaled so their longer side is at most this before MTCNN (it is slow on big frames).
DETECT_MAX_SIDE = 640
#: Face search (see detector.face.face_search): MTCNN searches the whole frame on the first sampled frame, on every
#: FULL_DETECT_EVERY-th one and whenever a followed face is not found again; in the frames between only a window
#: REGION_MARGIN times a followed face's size around where it should be, in the pyramid levels made for faces between
#: 1/LEVEL_RANGE and LEVEL_RANGE times its size. FULL_DETECT_EVERY = 1 searches every sampled frame whole (the
#: previous release).
FULL_DETECT_EVERY = 8
REGION_MARGIN = 3.0
LEVEL_RANGE = 3.0
#: A face followed for two frames or more that a full-frame search misses is still looked for near where it should
#: be for this many sampled frames (MTCNN misses a real face now and then).
REGION_KEEP_MISSING = 2
#: Between whole-frame searches, hand each followed face's predicted box straight to MTCNN's last network (ONet)
#: instead of searching its window: a third to a half cheaper face search, but the boxes are ONet's, not the search's
#: (overlap 0.95), which doubled the change in video scores against the previous release (0.0096 against 0.0048 with
#: version 2 on the labelled videos, at the 0.01 the speed issue allows); so off by default.
REFINE_FOLLOWED = False
#: Stages of one scan overlap: this many frames are decoded ahead of face detection, and crops are scored in
#: batches of STREAM_BATCH in a second thread while the next frames' faces are searched.
DECODE_PREFETCH = 2
STREAM_BATCH = 8
#: Videos are decoded without their unreferenced frames (``-skip_frame noref``: the B-frames no other frame is
#: predicted from, about half of a typical H.264 stream) when sampled frames are at least this many frames apart:
#: each sample then is the first decoded frame at or after its evenly spaced position (a frame or two later), and
#: ffmpeg spends about a third less CPU than decoding every frame. Denser sampling decodes every frame, so no two
#: samples fall on one decoded frame.
REFERENCE_DECODE_MIN_STEP = 4.0
#: Faces whose shorter box side (in original pixels) is smaller than this are ignored.
MIN_FACE_SIZE = 40
#: MTCNN confidence below which a detection is dropped.
MIN_FACE_CONFIDENCE = 0.9
#: Largest number of face tracks kept per video (the largest faces win).
MAX_FACES = 8
#: Two detections in consecutive sampled frames belong to one track when their IoU is at least this.
TRACK_IOU = 0.3
#: A face track decides a video's verdict only if it is seen in at least this share of the sampled frames (or is
#: the only face): MTCNN's one-frame false detections must not outvote the real face.
MIN_TRACK_SHARE = 0.25
#: ... and only if its median size is at least this share of the largest persistent face's.
MIN_TRACK_RELATIVE_SIZE = 0.25
#: Sampled frames in which MTCNN also tries the frame turned by 90, 270 and 180 degrees when it finds no face
#: upright (sideways or upside-down footage without rotation metadata); once a turn finds faces it is tried first.
ROTATION_SEARCH_FRAMES = 3
#: An MTCNN face this confident ends the search over frame turns (true upright faces score above it; the weak false
#: faces MTCNN reports on a sideways frame score below it).
SURE_FACE_CONFIDENCE = 0.98
#: Fake-probability threshold when the model card does not carry one.
DEFAULT_THRESHOLD = 0.5
#: Batch size for model inference.
BATCH_SIZE = 32
#: Number of most suspicious frames explained with Grad-CAM.
GRADCAM_FRAMES = 4
#: Grad-CAM calls an explainer runs eagerly before it runs the library's computation as a graph (detector.scan.explain):
#: a trace costs about three eager calls, so a one-file scan never pays it and a folder gains from its fifth file.
CAM_EAGER_CALLS = 1
#: Backbone of the task model when none is named: the shipped model's (saved_model/deepfake/card.json), so training
#: with no --backbone and the untrained stand-in (when no model is installed) build the network the scanner ships.
DEFAULT_BACKBONE = "mobilenetv2"
#: How a face track's per-frame fake probabilities are pooled into its score (one of detector.scan.aggregate.RULES), for
#: scanning, the server, training's checkpoint choice and evaluation alike.
AGGREGATION = "mean"

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

#: Where the shipped model lives: TF Serving layout ``<name>/<version>/`` plus card and .keras beside it. In a checkout
#: that is saved_model/ beside the package; a pip-installed package carries a copy inside itself (pyproject.toml).
PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
MODEL_NAME = "deepfake"
SAVED_MODEL_ROOT = next((folder for folder in (PROJECT_ROOT / "saved_model", PACKAGE_DIR / "saved_model")
                         if folder.is_dir()), PROJECT_ROOT / "saved_model")
DEFAULT_MODEL_DIR = SAVED_MODEL_ROOT / MODEL_NAME


def project_relative(value: Any) -> Any:
    """A path as recorded in results and model cards: relative to the project when it lies inside it (a record must
    not name the machine or folder it was made in), otherwise as given. Dicts and lists are walked, so a whole
    record can be passed; other values and strings that are not such paths come back unchanged."""
    if isinstance(value, dict):
        return {k: project_relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [project_relative(v) for v in value]
    if not isinstance(value, (str, os.PathLike)):
        return value
    candidate = Path(value)
    if candidate.is_absolute() and candidate.is_relative_to(PROJECT_ROOT):
        return candidate.relative_to(PROJECT_ROOT).as_posix()
    return str(value) if isinstance(value, os.PathLike) else value

#: Frames larger than this many pixels (100 MP, beyond 8K video) are refused as too large to decode safely.
MAX_PIXELS = 100_000_000

#: Content credentials (C2PA) and metadata markers: a manifest store whose JSON is larger than this is reported as
#: oversized and not interpreted, and at most this many actions, ingredients, codes or markers are listed, each text
#: cut to this many characters (a hostile manifest must not bloat result.json or the report).
PROVENANCE_MAX_MANIFEST_BYTES = 4_000_000
PROVENANCE_MAX_ITEMS = 50
PROVENANCE_MAX_TEXT = 300
#: PEM file of the certificate authorities whose signers count as verified (``--trusted-signers``); None: every
#: signer of content credentials is reported as "not verified".
TRUSTED_SIGNERS: Path | None = None

#: A truncated or damaged video is judged from whatever part of it decodes (a broken-off download still shows the
#: faces it holds, and a still is judged from one frame), with a warning that says how much that was; under this share
#: of its sampled frames the warning also says the verdict is weak, resting on a short stretch of the video.
WEAK_DECODED_FRACTION = 0.5

#: Server (``app.py serve``): address and port it listens on (this machine only unless told), where it keeps uploads,
#: jobs and results, and the largest upload it accepts.
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000
SERVE_DATA_DIR = Path("results/server")
MAX_UPLOAD_MB = 200.0
#: Server: uploads are refused (503) while this many scans wait, uploads being read included.
MAX_QUEUED_SCANS = 100
#: Server: a scan cut off by a server stop or crash is queued again until it has been started this many times.
MAX_SCAN_ATTEMPTS = 2
#: Server retention of finished scans (upload and results): at most this many days old, this many scans, and this
#: many GB together (200 MB uploads at most, so a laptop keeps its disk).
KEEP_DAYS = 7.0
KEEP_SCANS = 100
KEEP_GB = 5.0

# Temporal evidence (detector.temporal): how a face's landmarks move over runs of consecutive frames.
#: Runs of consecutive frames (windows) read per video at its native frame rate, spread over its length.
TEMPORAL_WINDOWS = 3
#: Frames per window: LRNet's clip length (one second at 30 fps).
WINDOW_FRAMES = 30
#: Windows are decoded so their longer side is at most this (landmarks need the face, not the full 4K frame).
WINDOW_MAX_SIDE = 960
#: A window is read only when the face track was seen within this many seconds of both of its ends (the face box of
#: each frame is interpolated between the track's sampled observations).
WINDOW_TRACK_GAP_S = 1.0
#: Faces whose median box side is below this many pixels give landmarks too coarse to trust: a warning says so.
MIN_LANDMARK_FACE = 64
