"""Face search between whole-frame detections: MTCNN on a window finds what it finds on the whole frame, the search
policy looks at the whole frame exactly where it must, and scans with it keep the same faces and boxes."""

from __future__ import annotations

import contextlib
import subprocess

import numpy as np
import pytest
from skimage import data

from detector.face import mtcnn_region
from detector.face.face_search import FaceSearch, SearchSettings
from detector.face.faces import Detection, FaceDetector, iou
from detector.face.mtcnn_region import Region


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def _as_array(found: list[dict]) -> np.ndarray:
    """MTCNN's dicts as rows: box, confidence, keypoints."""
    return np.array([[*d["box"], d["confidence"], *(v for k in sorted(d["keypoints"]) for v in d["keypoints"][k])]
                     for d in found], np.float64)


def test_a_window_gives_the_whole_frames_detection(detector: FaceDetector) -> None:
    """Same pixels, same pyramid levels, windows on PNet's grid: bit for bit the library's detection, even with the
    levels cut to the face's size (the measured speed-up comes from that cut and from the small window)."""
    image = np.ascontiguousarray(data.astronaut())
    mtcnn = detector._model()
    whole = mtcnn.detect_faces(image)
    assert len(whole) == 1
    x, y, w, h = whole[0]["box"]
    side = max(w, h)
    cx, cy = x + w / 2, y + h / 2
    for margin, spread in ((1.0, 3.0), (1.5, 3.0), (1.5, 1000.0)):
        window = np.array([cx - side * margin, cy - side * margin, cx + side * margin, cy + side * margin])
        found = mtcnn_region.detect_faces(mtcnn, image, Region(window, side / spread, side * spread))
        np.testing.assert_array_equal(_as_array(found), _as_array(whole))
    np.testing.assert_array_equal(_as_array(mtcnn_region.detect_faces(mtcnn, image)), _as_array(whole))


def test_normalize_is_mtcnns_scaling_exactly() -> None:
    """Every byte value, in a frame of odd size: the fast pass gives mtcnn's float64 numbers, bit for bit."""
    image = np.arange(257 * 3 * 5, dtype=np.int64).reshape(257, 5, 3) % 256
    image = image.astype(np.uint8)
    out = mtcnn_region.normalize(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(out.astype(np.float64), (image.astype(np.float64) - 127.5) / 128)


def _pair_frame() -> np.ndarray:
    """Two faces side by side (the astronaut and her mirror image), at 1024x512: shrunk before MTCNN."""
    image = data.astronaut()
    return np.ascontiguousarray(np.concatenate([image, image[:, ::-1]], axis=1))


@pytest.mark.parametrize("rotation", [0, 90])
def test_searches_of_one_frame_share_its_pyramid_and_find_the_same(detector: FaceDetector, rotation: int) -> None:
    """Inside ``same_frame`` each face's window search reuses the frame's shrunk, scaled copy and levels (made once
    per turn), and finds exactly what a search of its own finds; outside it, or for another image, nothing is kept."""
    frame = _pair_frame()
    turned = np.ascontiguousarray(np.rot90(frame, k=rotation // 90)) if rotation else frame  # counter-clockwise
    faces = detector.detect(turned, (rotation,))
    assert len(faces) == 2
    regions = [Region(np.concatenate([f.box[:2] - f.width, f.box[2:] + f.width]), f.width / 3, f.width * 3)
               for f in faces]
    alone = [detector.detect(turned, (rotation,), region=r) for r in regions]
    made = []
    original = mtcnn_region.Prepared.__init__

    def counting(self, image):
        made.append(image.shape)
        original(self, image)

    mtcnn_region.Prepared.__init__ = counting
    try:
        with detector.same_frame(turned):
            shared = [detector.detect(turned, (rotation,), region=r) for r in regions]
            assert len(made) == 1
            other = np.ascontiguousarray(turned[::-1])  # another image in the block is searched on its own
            detector.detect(other, (rotation,), region=regions[0])
            assert len(made) == 2
        detector.detect(turned, (rotation,), region=regions[0])
        assert len(made) == 3
    finally:
        mtcnn_region.Prepared.__init__ = original
    for a, b in zip(alone, shared):
        assert len(a) == len(b) >= 1
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.box, y.box)
            np.testing.assert_array_equal(x.keypoints, y.keypoints)
            assert x.confidence == y.confidence and x.frame_rotation == y.frame_rotation


def test_a_window_without_the_face_finds_nothing(detector: FaceDetector) -> None:
    image = np.ascontiguousarray(data.astronaut())
    assert mtcnn_region.detect_faces(detector._model(), image, Region(np.array([380.0, 380, 500, 500]))) == []
    assert mtcnn_region.detect_faces(detector._model(), image, Region(None, 2000.0)) == []  # no level that large


@pytest.mark.parametrize("rotation", [90, 270])
def test_a_window_in_a_turned_frame(detector: FaceDetector, rotation: int) -> None:
    """A face lying on its side is searched in the turned frame, window turned with it: the whole-frame result."""
    image = np.ascontiguousarray(np.rot90(data.astronaut(), k=rotation // 90))
    whole = detector.detect(image, rotations=(rotation,))
    assert len(whole) == 1 and whole[0].frame_rotation == rotation
    box = whole[0].box
    side = float(max(box[2] - box[0], box[3] - box[1]))
    window = np.concatenate([box[:2] - side, box[2:] + side])
    near = detector.detect(image, rotations=(rotation,), region=Region(window, side / 3, side * 3))
    assert len(near) == 1
    np.testing.assert_allclose(near[0].box, box, atol=1e-3)
    np.testing.assert_allclose(near[0].keypoints, whole[0].keypoints, atol=1e-3)


@pytest.mark.parametrize("rotation", [0, 90])
def test_a_seeded_face_is_refined_where_it_is(detector: FaceDetector, rotation: int) -> None:
    """A box near the face (moved by a tenth of its size), handed to ONet alone, comes back as the face the search
    finds (close, not bit for bit: ONet starts from another box); in a turned frame too. A seed on the background
    finds nothing."""
    image = np.ascontiguousarray(np.rot90(data.astronaut(), k=rotation // 90))
    whole = detector.detect(image, rotations=(rotation,))[0]
    box = whole.box
    side = float(max(box[2] - box[0], box[3] - box[1]))
    window = np.concatenate([box[:2] - side, box[2:] + side])
    seed = box + np.float32(side / 10)
    near = detector.detect(image, rotations=(rotation,), region=Region(window, side / 3, side * 3, seed=seed))
    assert len(near) == 1 and near[0].frame_rotation == rotation
    assert iou(near[0].box, box) > 0.85
    assert np.abs(near[0].keypoints - whole.keypoints).max() < 0.05 * side
    empty = Region(np.array([380.0, 380, 500, 500]), seed=np.array([400.0, 400, 480, 480]))
    assert mtcnn_region.detect_faces(detector._model(), np.ascontiguousarray(data.astronaut()), empty) == []


def test_compiled_mtcnn_detects_what_eager_mtcnn_detects() -> None:
    image = np.ascontiguousarray(data.astronaut())
    compiled, eager = FaceDetector().detect(image)[0], FaceDetector(compiled=False).detect(image)[0]
    np.testing.assert_allclose(compiled.box, eager.box, atol=1e-3)
    np.testing.assert_allclose(compiled.keypoints, eager.keypoints, atol=1e-3)


class ScriptedFaces:
    """A stand-in for FaceDetector over a scripted scene: ``faces[frame]`` are the true boxes; a whole-frame search
    returns those larger than ``region.min_face``, a window search those inside the window. Records every call."""

    def __init__(self, faces: dict[int, list[tuple[float, float, float]]]):
        self.faces = faces  # frame -> [(x, y, side)]
        self.frame = 0
        self.calls: list[str] = []
        self.seeds: list[np.ndarray | None] = []

    def same_frame(self, image):
        return contextlib.nullcontext()

    def detect(self, image, rotations=(0,), sure=0.98, region: Region | None = None) -> list[Detection]:
        boxes = [np.array([x, y, x + s, y + s], np.float32) for x, y, s in self.faces.get(self.frame, [])]
        self.seeds.append(None if region is None else region.seed)
        if region is not None:
            boxes = [b for b in boxes if region.min_face <= b[2] - b[0] <= region.max_face]
        if region is not None and region.window is not None:
            self.calls.append("window")
            w = region.window
            boxes = [b for b in boxes if b[0] >= w[0] and b[1] >= w[1] and b[2] <= w[2] and b[3] <= w[3]]
        else:
            self.calls.append("full")
        return [Detection(box=b, confidence=0.99, keypoints=np.zeros((5, 2), np.float32)) for b in boxes]


def _run(scene: ScriptedFaces, frames: int, settings: SearchSettings) -> list[list[Detection]]:
    search = FaceSearch(scene, settings)  # type: ignore[arg-type]
    image = np.zeros((720, 1280, 3), np.uint8)
    found = []
    for frame in range(frames):
        scene.frame = frame
        found.append(search.detect(image))
    return found


def test_whole_frame_only_on_the_first_and_every_kth_frame_while_faces_stay() -> None:
    scene = ScriptedFaces({f: [(100 + 5 * f, 100, 120)] for f in range(20)})  # one face drifting right
    found = _run(scene, 20, SearchSettings(full_every=8))
    assert [c for c in scene.calls] == ["full"] + ["window"] * 7 + ["full"] + ["window"] * 7 + ["full"] + \
        ["window"] * 3
    assert all(len(f) == 1 for f in found)
    assert found[5][0].box[0] == pytest.approx(125)  # followed as it moves
    scene.calls.clear()
    _run(scene, 5, SearchSettings(full_every=1))
    assert scene.calls == ["full"] * 5  # the previous release: every frame whole


def test_refined_windows_seed_each_face_where_it_should_be() -> None:
    """With ``refine``, each window search hands MTCNN the followed face's predicted box (moved on at its speed);
    without it, no seed; whole-frame searches never have one."""
    scene = ScriptedFaces({f: [(100 + 10 * f, 100, 120)] for f in range(4)})
    found = _run(scene, 4, SearchSettings(full_every=8, refine=True))
    assert scene.calls == ["full", "window", "window", "window"] and scene.seeds[0] is None
    np.testing.assert_allclose(scene.seeds[2], [120, 100, 240, 220])  # frame 1's box, plus its 10-px step
    assert [f[0].box[0] for f in found] == [100, 110, 120, 130]
    scene.calls.clear()
    scene.seeds.clear()
    _run(scene, 4, SearchSettings(full_every=8, refine=False))
    assert scene.seeds == [None] * 4


def test_a_lost_face_sends_the_search_back_to_the_whole_frame() -> None:
    # the face jumps across the frame at frame 3: its window is empty, so frame 3 is searched whole and it is found
    scene = ScriptedFaces({f: [(100, 100, 120)] if f < 3 else [(900, 400, 120)] for f in range(9)})
    found = _run(scene, 9, SearchSettings(full_every=8, keep_missing=2))
    assert scene.calls[:5] == ["full", "window", "window", "window", "full"]
    assert all(len(f) == 1 for f in found) and found[3][0].box[0] == pytest.approx(900)
    # its old place is still looked at for keep_missing frames (a face MTCNN missed once comes back), each miss
    # costing a whole-frame search; then it is dropped and only the moved face's window is searched
    assert scene.calls.count("full") == 2 + 2
    assert scene.calls[-3:] == ["window"] * 3


def test_a_face_that_enters_is_found_at_the_next_whole_frame_search() -> None:
    scene = ScriptedFaces({f: [(100, 100, 120)] + ([(700, 300, 110)] if f >= 2 else []) for f in range(10)})
    found = _run(scene, 10, SearchSettings(full_every=4))
    assert [len(f) for f in found] == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]  # frames 2-3 are windows around the first face


def test_whole_frame_searches_skip_faces_too_small_to_count() -> None:
    """While a 400-px face is followed, the periodic whole-frame search is not made to look for 20-px faces (the
    smallest that can count is a quarter of the main face): the finest, dearest pyramid levels are skipped."""
    scene = ScriptedFaces({f: [(100, 100, 400), (900, 100, 20)] for f in range(9)})
    found = _run(scene, 9, SearchSettings(full_every=8))
    assert len(found[0]) == 2  # the first search looks for every size
    assert len(found[8]) == 1 and found[8][0].width == pytest.approx(400)


def test_an_established_face_missed_once_is_still_looked_for() -> None:
    # seen in frames 0-8, missing at 9 (a whole-frame search: the 8-frame period), back at 10
    scene = ScriptedFaces({f: [(100, 100, 120)] for f in range(12) if f != 8})
    found = _run(scene, 12, SearchSettings(full_every=8, keep_missing=2))
    assert found[8] == []
    assert scene.calls[9] == "window" and len(found[9]) == 1  # looked for near where it was, and found


@pytest.mark.e2e  # MTCNN over two clips, twice each
def test_face_search_keeps_the_boxes_of_whole_frame_search(demo, tmp_path) -> None:
    """On the demo clip (a camera panning and zooming over a face) and on the same clip turned sideways without
    rotation metadata, following faces gives the same tracks and boxes as searching every frame whole, with a
    fraction of the whole-frame searches."""
    from detector.scan.pipeline import extract_faces

    upright = demo / "astronaut_pan.mp4"
    sideways = tmp_path / "sideways.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(upright), "-vf", "transpose=clock",
                    "-metadata:s:v", "rotate=0", "-c:v", "libx264", "-crf", "18", str(sideways)], check=True)
    faces = FaceDetector()
    for clip in (upright, sideways):
        every = extract_faces(clip, faces, frames=24, search=SearchSettings(full_every=1))
        followed = extract_faces(clip, faces, frames=24, search=SearchSettings(full_every=8))
        assert every.searches == {"full": 24, "window": 0}
        assert followed.searches["full"] <= 6 and followed.searches["window"] >= 18, followed.searches
        assert [len(t.observations) for t in followed.tracks] == [len(t.observations) for t in every.tracks]
        for old, new in zip(every.tracks, followed.tracks):
            for a, b in zip(old.observations, new.observations):
                assert a.frame_index == b.frame_index
                assert iou(a.detection.box, b.detection.box) > 0.999, (clip.name, a.frame_index)
                np.testing.assert_allclose(a.detection.keypoints, b.detection.keypoints, atol=0.01)
                np.testing.assert_array_equal(a.crop, b.crop)
