"""The settings of one scan (:class:`ScanOptions`), in a module of their own that imports nothing heavy, so the
command line can take its defaults from the fields before TensorFlow or MTCNN load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from detector import config

if TYPE_CHECKING:
    from detector.face.face_search import SearchSettings


@dataclass
class ScanOptions:
    """Everything a user can tune about one scan, with its default: the one owner of scan settings. The command
    line (scan, serve and evaluate share one argument group, :func:`detector.cli.scan_options_parent`), the server,
    evaluation and the benchmarks all build their options from these fields; the numbers themselves are
    :mod:`detector.config`'s."""

    frames: int = config.FRAMES_PER_VIDEO
    fps: float | None = None
    threshold: float | None = None
    max_faces: int = config.MAX_FACES
    min_face: int = config.MIN_FACE_SIZE
    margin: float = config.CROP_MARGIN
    batch_size: int = config.BATCH_SIZE
    aggregation: str = config.AGGREGATION
    gradcam: bool = True
    cam_method: str = "gradcam++"
    gradcam_frames: int = config.GRADCAM_FRAMES
    #: MTCNN searches the whole frame on every this-many-th sampled frame, between them only around the faces it
    #: follows (see :mod:`detector.face.face_search`); 1 searches every frame whole, as the previous release did
    full_detect_every: int = config.FULL_DETECT_EVERY
    #: decode, face search and scoring of one video overlap in threads (see :mod:`detector.scan.overlap`)
    overlap: bool = True
    #: decode every frame and take exactly the evenly spaced ones; by default a video's unreferenced frames are not
    #: decoded and a sample may be the next decoded frame (see :func:`detector.ingest.video.iter_frames`)
    exact_frames: bool = False
    #: between whole-frame searches, MTCNN's last network refines each followed face's predicted box instead of
    #: searching a window around it (see :mod:`detector.face.face_search`)
    refine_faces: bool = config.REFINE_FOLLOWED
    #: PEM text of the certificate authorities whose content-credential signers count as verified
    trusted_signers: str | None = None
    #: read the followed faces' landmark motion in a few windows of consecutive frames (see :mod:`detector.temporal`)
    temporal: bool = True

    def search_settings(self) -> SearchSettings:
        """How the face search of a scan with these options runs (the scanner and the batch workers alike)."""
        from detector.face.face_search import SearchSettings

        return SearchSettings(full_every=self.full_detect_every, refine=self.refine_faces)
