"""One scan: file -> sampled frames -> face tracks -> probabilities -> verdict (+ Grad-CAM). No files are written here.

Each stage is its own module and hands plain data to the next; this module only wires them, so a batch runner or a
web worker can reuse the same function.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from detector.scan import aggregate
from detector import config
from detector.ingest import video
from detector.errors import DetectorError
from detector.face.face_search import FaceSearch, SearchSettings
from detector.face.faces import FaceDetector, FaceTrack, FaceTracker, Observation, crop_face
from detector.ingest.inputs import MEDIA_SUFFIXES, find_media, result_name  # noqa: F401  (their home is detector.ingest.inputs)
from detector.scan.options import ScanOptions  # noqa: F401  (its home is detector.scan.options)
from detector.scan.overlap import StreamScorer, prefetch
from detector.origin.provenance import Provenance, read_provenance
from detector.models.scoring import Scorer
from detector.scan.fusion import disagreement
from detector.temporal.branch import TemporalEvidence, TemporalReading, TemporalScorer, read_video, shared_predictor

if TYPE_CHECKING:  # explain imports keras and tf-keras-vis: only a scan that makes heatmaps loads them
    from detector.scan.explain import CamExplainer

log = logging.getLogger(__name__)


@dataclass
class Explanation:
    """A Grad-CAM heatmap for one face observation."""

    track_id: int
    frame_index: int
    time: float
    probability: float
    crop: np.ndarray
    heatmap: np.ndarray


@dataclass
class ScanResult:
    """Everything known about one scanned input; :mod:`detector.scan.report` turns it into files."""

    path: str
    name: str
    verdict: str
    score: float | None = None
    threshold: float = config.DEFAULT_THRESHOLD
    info: video.VideoInfo | None = None
    frames: list[dict] = field(default_factory=list)
    tracks: list[FaceTrack] = field(default_factory=list)
    track_scores: list[float] = field(default_factory=list)
    explanations: list[Explanation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: dict = field(default_factory=dict)
    provenance: Provenance | None = None
    #: landmark motion in windows of consecutive frames; shown beside the verdict (it decides it only when the model
    #: card's fusion rule names it)
    temporal: TemporalEvidence | None = None


@dataclass
class ExtractedFaces:
    """Stage 1+2 output for one file: video facts, the sampled frames' summaries and the face tracks with crops."""

    info: video.VideoInfo
    frames: list[dict]
    tracks: list[FaceTrack]
    warnings: list[str]
    seconds: dict
    #: how many whole-frame and window searches MTCNN ran (see :class:`detector.face.face_search.FaceSearch`)
    searches: dict = field(default_factory=dict)
    #: the landmark windows read where the file is at hand (a Ray worker's download, say); scored in
    #: :meth:`Scanner.finish` where the model is
    temporal: TemporalReading | None = None


def extract_faces(path: str | Path, face_detector: FaceDetector, frames: int | None = config.FRAMES_PER_VIDEO,
                  fps: float | None = None, margin: float = config.CROP_MARGIN, size: int = config.IMAGE_SIZE,
                  max_faces: int = config.MAX_FACES,
                  progress: Callable[[int, int], None] | None = None, search: SearchSettings | None = None,
                  on_observations: Callable[[list[Observation]], None] | None = None,
                  prefetch_frames: int = config.DECODE_PREFETCH, exact_frames: bool = False,
                  temporal: bool = False) -> ExtractedFaces:
    """Probe, stream the sampled frames, detect, crop and track faces. Shared by the scanner and training data prep,
    so a model is trained on exactly the crops it will see. Raises :class:`InputError` for unusable files.

    ``on_observations`` receives each frame's new observations as soon as they are cropped (the scanner scores them
    meanwhile); ``prefetch_frames`` frames are decoded ahead in a thread. ``seconds["decode"]`` is the time spent
    waiting for frames, so with prefetching it counts only the decoding that did not overlap the search.
    ``exact_frames`` decodes every frame to take exactly :func:`detector.ingest.video.sample_indices`' frames.
    ``temporal`` also reads the counted faces' landmark windows (:mod:`detector.temporal`) while the file is here.
    """
    info = video.probe(path)
    frames_arg = None if fps else frames
    requested = len(video.sample_indices(info, frames_arg, fps))
    tracker = FaceTracker()
    finder = FaceSearch(face_detector, search)
    summaries: list[dict] = []
    last_time, t_decode, t_faces = 0.0, 0.0, 0.0
    rotations = _RotationSearch()
    with closing(prefetch(video.iter_frames(info, frames_arg, fps, reference_only=False if exact_frames else None),
                          prefetch_frames)) as frame_iter:
        while True:
            t = time.perf_counter()
            frame = next(frame_iter, None)
            t_decode += time.perf_counter() - t
            if frame is None:
                break
            last_time = frame.time
            t = time.perf_counter()
            observations = _faces_of(frame, finder, rotations, margin, size)
            tracker.update(observations)
            t_faces += time.perf_counter() - t
            if on_observations:
                on_observations(observations)
            summaries.append({"index": frame.index, "time": frame.time, "faces": len(observations)})
            if progress:
                progress(len(summaries), requested)
    warnings = video.input_warnings(info) + video.check_complete(info, requested, len(summaries), last_time)
    tracks = tracker.result(max_faces)
    warnings += mark_counted_tracks(tracks, len(summaries), info.is_image, size)
    if rotations.used:
        warnings.append(f"faces were found only in frames turned by {', '.join(map(str, sorted(rotations.used)))} "
                        "degrees (footage filmed sideways or upside down without rotation metadata)")
    faces = ExtractedFaces(info=info, frames=summaries, tracks=tracks, warnings=warnings,
                           seconds={"decode": t_decode, "faces": t_faces}, searches=dict(finder.counts))
    if temporal and not info.is_image and any(t.counted for t in tracks):
        _read_windows(faces)
    return faces


def _read_windows(faces: ExtractedFaces) -> None:
    """Read the temporal windows of extracted faces; any failure is a warning (the frame verdict stands alone)."""
    try:
        faces.temporal = read_video(faces.info, faces.tracks, shared_predictor())
    except Exception as exc:  # a missing landmark model, an unreadable window: never the scan's failure
        faces.warnings.append(f"temporal evidence off: {exc}")
        return
    faces.warnings += faces.temporal.warnings
    faces.seconds["temporal"] = faces.temporal.seconds.get("temporal", 0.0)


def _faces_of(frame: video.Frame, finder: FaceSearch, rotations: "_RotationSearch", margin: float,
              size: int) -> list[Observation]:
    """One frame's faces, aligned and cropped, with boxes in displayed-video pixels."""
    detections = finder.detect(frame.image, rotations.order())
    rotations.seen(detections)
    observations = []
    for det in detections:
        crop = crop_face(frame.image, det.box, det.keypoints, margin, size)
        # report boxes in displayed-video pixels even when a huge video was decoded downscaled
        det.box = det.box / frame.scale
        det.keypoints = det.keypoints / frame.scale
        observations.append(Observation(frame.index, frame.time, det, crop.image, crop.keypoints, angle=crop.angle))
    return observations


class _RotationSearch:
    """Which frame turns MTCNN tries. Upright only, except in the first ``ROTATION_SEARCH_FRAMES`` frames read
    upright (with or without a face: a sideways face can fool MTCNN upright), or once a turn has found faces (then
    that turn first). So an upright video pays for the search on a few frames at most, and a sideways one keeps
    finding its faces."""

    def __init__(self, budget: int = config.ROTATION_SEARCH_FRAMES):
        self.budget = budget
        self.preferred = 0
        self.used: set[int] = set()

    def order(self) -> tuple[int, ...]:
        if self.budget <= 0 and not self.used:
            return (0,)
        rest = [r for r in (0, 90, 270, 180) if r != self.preferred]
        return (self.preferred, *rest)

    def seen(self, detections: list) -> None:
        rotation = detections[0].frame_rotation if detections else 0
        if rotation:
            self.preferred = rotation
            self.used.add(rotation)
        elif not self.used:
            self.budget -= 1


def mark_counted_tracks(tracks: list[FaceTrack], frames_sampled: int, is_image: bool, crop_size: int) -> list[str]:
    """Apply the track rule (:func:`detector.scan.aggregate.select_tracks`) to extracted tracks; return warnings."""
    facts = [aggregate.TrackFacts(
        frames=len(t.observations),
        median_side=float(np.median([max(o.detection.width, o.detection.height) for o in t.observations])),
        geometry_ok=float(np.mean([aggregate.plausible_landmarks(o.crop_keypoints, crop_size)
                                   for o in t.observations])))
        for t in tracks]
    warnings = []
    for track, decision in zip(tracks, aggregate.select_tracks(facts, frames_sampled, is_image)):
        track.counted, track.reason = decision.counted, decision.reason
        if decision.counted and decision.reason:
            warnings.append(f"face {track.track_id}: {decision.reason}")
    return warnings


def _crop_count(faces: ExtractedFaces) -> int:
    return sum(len(track.observations) for track in faces.tracks)


class Scanner:
    """Holds the loaded model and face detector so a batch pays their start-up cost once."""

    def __init__(self, detector: Scorer, options: ScanOptions | None = None,
                 face_detector: FaceDetector | None = None, explainer: CamExplainer | None = None):
        self.detector = detector
        self.options = options or ScanOptions()
        self.faces = face_detector or FaceDetector(min_face=self.options.min_face)
        # made on first use (options.cam_method) unless given
        self._explainer = explainer
        # the temporal branch is loaded on the first video that needs it (dlib and the landmark model); a failure to
        # load is kept and said in every result instead of stopping the scan
        self._temporal: TemporalScorer | None = None
        self._temporal_error: str | None = None

    @property
    def threshold(self) -> float:
        return self.options.threshold if self.options.threshold is not None else self.detector.card.threshold

    def scan(self, path: str | Path, name: str | None = None,
             progress: Callable[[int, int], None] | None = None) -> ScanResult:
        """Scan one file; input problems come back as a result with verdict ``error``, never as an exception.

        The file's provenance (content credentials, metadata markers: an ffprobe and a file read, mostly waiting) is
        read in a thread while its frames are decoded and searched."""
        path = Path(path)
        with ThreadPoolExecutor(1, thread_name_prefix="provenance") as pool:
            provenance = pool.submit(read_provenance, path, self.options.trusted_signers)
            result = self.new_result(path, name, with_provenance=False)
            try:
                t0 = time.perf_counter()
                faces = self.extract(path, progress)
                self.finish(result, faces, t0)
            except Exception as exc:
                self.fail(result, exc)
            result.provenance = provenance.result()
        return result

    def extract(self, path: Path, progress: Callable[[int, int], None] | None = None) -> ExtractedFaces:
        """One file's faces, scored. With ``options.overlap`` frames decode ahead and the model scores crops while
        later frames are still searched; without it the stages run one after the other (the previous release)."""
        opts = self.options
        search = opts.search_settings()
        args = (path, self.faces, opts.frames, opts.fps, opts.margin, self.detector.image_size, opts.max_faces,
                progress)
        if not opts.overlap:
            faces = extract_faces(*args, search=search, prefetch_frames=0, exact_frames=opts.exact_frames,
                                  temporal=opts.temporal)
            self.score([faces])
            return faces
        with StreamScorer(self.detector, config.STREAM_BATCH, opts.batch_size) as scorer:
            faces = extract_faces(*args, search=search, on_observations=scorer.add, exact_frames=opts.exact_frames,
                                  temporal=opts.temporal)
            faces.seconds["model"] = scorer.finish()
        return faces

    def new_result(self, path: Path, name: str | None = None, with_provenance: bool = True) -> ScanResult:
        """An ``error`` result for ``path`` until :meth:`finish` fills it, with the file's provenance read unless
        ``with_provenance`` is false (the caller reads it)."""
        provenance = read_provenance(path, self.options.trusted_signers) if with_provenance else None
        return ScanResult(path=str(path), name=name or result_name(path, None), verdict="error",
                          threshold=self.threshold, provenance=provenance)

    @staticmethod
    def fail(result: ScanResult, exc: BaseException) -> ScanResult:
        """Turn an exception into an ``error`` result with a one-line message (a batch must never stop on one file)."""
        if isinstance(exc, DetectorError):
            result.error = str(exc)
        else:
            log.exception("unexpected failure on %s", result.path, exc_info=exc)
            result.error = f"{result.path}: internal error ({type(exc).__name__}: {exc})"
        result.verdict = "error"
        return result

    def score(self, extracted: list[ExtractedFaces]) -> float:
        """Score the crops of several files in one pass, so the model sees full batches even when each video has
        only a few faces; returns the seconds spent."""
        t = time.perf_counter()
        observations = [obs for faces in extracted for track in faces.tracks for obs in track.observations]
        if observations:
            probs = self.detector.predict(np.stack([o.crop for o in observations]), self.options.batch_size)
            for obs, p in zip(observations, probs):
                obs.probability = float(p)
        seconds = time.perf_counter() - t
        for faces in extracted:
            faces.seconds["model"] = seconds * _crop_count(faces) / max(1, len(observations))
        return seconds

    def finish(self, result: ScanResult, faces: ExtractedFaces, t0: float | None = None) -> ScanResult:
        """Aggregate scored faces into the verdict and add Grad-CAM explanations."""
        opts = self.options
        result.info, result.frames, result.tracks = faces.info, faces.frames, faces.tracks
        result.warnings += faces.warnings
        result.track_scores, result.score = aggregate.decide(
            [[o.probability for o in tr.observations] for tr in result.tracks],
            [aggregate.TrackDecision(tr.counted, tr.reason) for tr in result.tracks], opts.aggregation)
        result.verdict = aggregate.verdict(result.score, self.threshold)
        self._fill_frame_probabilities(result)
        t = time.perf_counter()
        if faces.temporal is not None:
            self._score_temporal(result, faces.temporal)
        t_temporal = time.perf_counter() - t
        t = time.perf_counter()
        if opts.gradcam and result.tracks:
            result.explanations = self._explain(result)
        t_cam = time.perf_counter() - t
        if not self.detector.card.trained:
            result.warnings.append("the model is untrained: this verdict is provisional and carries no information")
        result.seconds = {key: round(faces.seconds.get(key, 0.0), 3) for key in ("decode", "faces", "model")}
        result.seconds["gradcam"] = round(t_cam, 3)
        if faces.temporal is not None:
            result.seconds["temporal"] = round(faces.seconds.get("temporal", 0.0) + t_temporal, 3)
        if t0 is not None:
            result.seconds["total"] = round(time.perf_counter() - t0, 3)
        else:
            result.seconds["total"] = round(sum(result.seconds.values()), 3)
        return result

    def _score_temporal(self, result: ScanResult, reading: TemporalReading) -> None:
        """Score a video's landmark windows with the temporal model (the model folder's ``temporal.keras``, else the
        published LRNet weights): each counted face's mean over its windows, the most suspicious face's as the
        video's. Shown beside the verdict; a failure is a warning, never a failed scan."""
        if self._temporal is None and self._temporal_error is None:
            try:
                origin = getattr(self.detector, "origin", None)
                folder = str(origin if origin.is_dir() else origin.parent) if origin is not None else None
                self._temporal = TemporalScorer.load(folder)
            except Exception as exc:  # an unreadable temporal.keras: said in every result
                self._temporal_error = str(exc)
        if self._temporal is None:
            result.warnings.append(f"temporal evidence off: {self._temporal_error}")
            return
        try:
            evidence = self._temporal.evidence(reading, result.info)
        except Exception as exc:  # the frame verdict stands without it
            result.warnings.append(f"temporal evidence unavailable: {exc}")
            return
        faces = sorted({w.track_id for w in evidence.windows})
        evidence.score = aggregate.video_score([aggregate.pool([w.probability for w in evidence.windows
                                                                 if w.track_id == t], "mean") for t in faces])
        result.temporal = evidence
        if evidence.score is not None and result.score is not None:
            split = disagreement({"frame model": result.score, "temporal model": evidence.score})
            if split:
                result.warnings.append(split)

    @staticmethod
    def _fill_frame_probabilities(result: ScanResult) -> None:
        """Per sampled frame: the highest fake probability among its counted faces (the timeline plots this)."""
        best: dict[int, float] = {}
        for track in (t for t in result.tracks if t.counted):
            for obs in track.observations:
                best[obs.frame_index] = max(best.get(obs.frame_index, 0.0), obs.probability)
        for frame in result.frames:
            frame["max_probability"] = best.get(frame["index"])

    def _explain(self, result: ScanResult) -> list[Explanation]:
        """Grad-CAM for the most suspicious observations (ties broken by time), at most ``gradcam_frames``."""
        model = self.detector.keras_model
        if model is None:
            result.warnings.append("Grad-CAM skipped: the model was loaded from a SavedModel without model.keras")
            return []
        if self._explainer is None:
            from detector.scan.explain import make_explainer

            self._explainer = make_explainer(self.options.cam_method, model)
        ranked = sorted(((obs.probability, track.track_id, obs) for track in result.tracks if track.counted
                         for obs in track.observations), key=lambda item: (-item[0], item[2].frame_index))
        chosen = ranked[: self.options.gradcam_frames]
        maps = self._explainer.heatmaps(np.stack([obs.crop for _, _, obs in chosen]))
        return [Explanation(track_id=tid, frame_index=obs.frame_index, time=obs.time, probability=prob,
                            crop=obs.crop, heatmap=heat) for (prob, tid, obs), heat in zip(chosen, maps)]
