"""MTCNN run on part of a frame, giving the detections a whole-frame run gives there.

Most of MTCNN's time goes to its first network (PNet), slid over a pyramid of shrunken copies of the whole frame.
To find a face again near where it was, this module runs PNet only on a window around that place, in those pyramid
levels whose 12-pixel cell matches the face's known size, and then MTCNN's own second and third stages on the
proposals found. The levels are the whole frame's levels (same shrinking, same pixels) and the window starts on
PNet's 2-pixel grid, so each proposal is the one a whole-frame run makes there, and the face comes out with the same
box and landmarks: the model's crops stay the same while the search costs a fraction.

Built from the pieces of mtcnn 1.0.0 (its stages and box utilities, with its default thresholds); the tests compare
it with ``MTCNN.detect_faces`` on the same frames, so a change in the library shows there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: mtcnn 1.0.0's defaults (StagePNet): smallest face, pyramid step, proposal threshold, NMS within / across levels
MIN_FACE = 20
SCALE_FACTOR = 0.709
PNET_THRESHOLD = 0.6
PNET_NMS_LEVEL = 0.5
PNET_NMS_ALL = 0.7
#: ONet passes over a handed face box (see :func:`_refine`)
REFINE_ROUNDS = 2
#: PNet's cell (pixels of a pyramid level) and its stride
CELL = 12
STRIDE = 2


@dataclass
class Region:
    """Where to search and for faces of which size: ``window`` (x1, y1, x2, y2; None: the whole image) and the
    smallest and largest face side, all in the pixels of the image searched."""

    window: np.ndarray | None = None
    min_face: float = 0.0
    max_face: float = math.inf
    #: a face box (x1, y1, x2, y2) expected here: MTCNN's last network refines it directly, without a search
    seed: np.ndarray | None = None

    def scaled(self, factor: float) -> "Region":
        """The same region in an image resized by ``factor``."""
        window = None if self.window is None else np.asarray(self.window, np.float64) * factor
        seed = None if self.seed is None else np.asarray(self.seed, np.float64) * factor
        return Region(window, self.min_face * factor, self.max_face * factor, seed)


class Prepared:
    """An image made ready for MTCNN once: its scaled tensor and the pyramid levels cut from it so far.

    A frame with several followed faces is searched once per face; each search needs the same scaled frame and
    mostly the same levels (each a resize of the whole frame), so they are made for the first and reused."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self._normalized = None
        self._levels: dict[float, np.ndarray] = {}

    @property
    def normalized(self):
        """The image as MTCNN's networks take it: a (1, h, w, 3) float32 tensor of :func:`normalize`."""
        if self._normalized is None:
            import tensorflow as tf

            self._normalized = tf.convert_to_tensor(normalize(self.image)[None])
        return self._normalized

    def level(self, scale: float) -> np.ndarray:
        """The pyramid level at ``scale`` (1, h, w, 3), as ``StagePNet`` makes it."""
        from mtcnn.utils.images import scale_images

        if scale not in self._levels:
            self._levels[scale] = scale_images(self.normalized, scale).numpy()  # numpy: eager slicing is slow
        return self._levels[scale]


def detect_faces(mtcnn, image: np.ndarray | Prepared, region: Region | None = None) -> list[dict]:
    """What ``mtcnn.detect_faces(image)`` returns (boxes as x, y, width, height in ``image`` pixels), restricted to
    the faces PNet proposes inside ``region.window`` from the pyramid levels whose cell stands for a face between
    ``region.min_face`` and ``region.max_face`` pixels. Pass a :class:`Prepared` image to share its scaling and
    levels between several searches of it."""
    import tensorflow as tf
    from mtcnn.utils.bboxes import limit_bboxes, resize_to_square, smart_nms_from_bboxes, to_json

    region = region or Region()
    prepared = image if isinstance(image, Prepared) else Prepared(image)
    image = prepared.image
    _, rnet, onet = mtcnn.stages
    shapes = np.asarray([image.shape])
    normalized = prepared.normalized
    try:
        if region.seed is not None:
            boxes = _refine(onet, normalized, shapes, region.seed)
        else:
            proposals = _proposals(mtcnn.stages[0], prepared, region)
            if not proposals:
                return []
            boxes = smart_nms_from_bboxes(np.concatenate(proposals, axis=0), threshold=PNET_NMS_ALL, method="union",
                                          initial_sort=True)
            boxes = rnet(bboxes_batch=resize_to_square(boxes), images_normalized=normalized, images_oshapes=shapes)
            if len(boxes) == 0:
                return []
            boxes = onet(bboxes_batch=boxes, images_normalized=normalized, images_oshapes=shapes)
    except tf.errors.InvalidArgumentError:  # what mtcnn itself takes for "no faces"
        return []
    if len(boxes) == 0:
        return []
    boxes = limit_bboxes(boxes, images_shapes=shapes, limit_landmarks=False)  # one image: no batch padding to undo
    found = to_json(boxes, images_count=1, output_as_width_height=True, input_as_width_height=False)
    return found[0] if found else []


def _refine(onet, normalized, shapes: np.ndarray, seed: np.ndarray, rounds: int = REFINE_ROUNDS) -> np.ndarray:
    """ONet on the squared ``seed`` box, ``rounds`` times (each round starts from the box the last one regressed):
    what MTCNN's last stage makes of a face it is handed where it is, without PNet's search and RNet's filtering.
    Empty when ONet no longer sees a face there (below its threshold).

    ONet's box is not a fixed point of the search: the face comes out a few pixels from where the search puts it
    (box overlap 0.95 on average on the labelled videos; RNet before ONet, or nine jittered seeds through both,
    measured no closer)."""
    from mtcnn.utils.bboxes import resize_to_square

    boxes = np.array([[0.0, *np.asarray(seed, np.float64)[:4], 1.0]])
    for _ in range(rounds):
        boxes = onet(bboxes_batch=resize_to_square(boxes[:, :6]), images_normalized=normalized,
                     images_oshapes=shapes)
        if len(boxes) == 0:
            break
    return boxes


def normalize(image: np.ndarray) -> np.ndarray:
    """MTCNN's input scaling, (x - 127.5) / 128, of an RGB uint8 image, as float32.

    mtcnn computes it in float64, but for a byte it is exact in float32 (x / 128 and 127.5 / 128 are multiples of
    2^-8 below 2), and TensorFlow's resize and crop kernels compute in float32 either way: the same numbers. OpenCV's
    fused, vectorised pass makes them in a seventh of numpy's time (subtract, then divide, through temporaries): every
    search of a frame pays it once, on the frame shrunk to 640 px, and it was about 4 % of the face search's CPU time.
    """
    return cv2.addWeighted(image, 1 / 128, image, 0.0, -127.5 / 128, dtype=cv2.CV_32F)


def _proposals(pnet, prepared: Prepared, region: Region) -> list[np.ndarray]:
    """PNet's proposals per pyramid level (after the per-level NMS), as ``StagePNet`` makes them, from the window.

    The windows of all levels go through PNet in one call (padded to the largest; the cells that see padding are
    dropped): on windows this small the call, not the arithmetic, is what costs. A window with an odd side (cut by
    the level's edge) goes alone, since a padded row would change its last pooled cell.
    """
    import tensorflow as tf
    from mtcnn.utils.bboxes import generate_bounding_box, smart_nms_from_bboxes, upscale_bboxes
    from mtcnn.utils.images import build_scale_pyramid

    h, w = prepared.image.shape[:2]
    x0, y0, x1, y1 = region.window if region.window is not None else (0, 0, w, h)
    windows = []
    for scale in build_scale_pyramid(w, h, min_face_size=MIN_FACE, scale_factor=SCALE_FACTOR):
        if not region.min_face <= CELL / scale <= region.max_face:
            continue
        level = prepared.level(scale)
        lh, lw = level.shape[1], level.shape[2]
        # the window on this level: its origin on PNet's grid and an even side, so every cell is one that a
        # whole-level run has, computed from the same pixels
        lx0, ly0 = _on_grid(x0 * scale), _on_grid(y0 * scale)
        lx1, ly1 = _even_end(lx0, x1 * scale, lw), _even_end(ly0, y1 * scale, lh)
        if lx1 - lx0 >= CELL and ly1 - ly0 >= CELL:
            windows.append((scale, lx0, ly0, level[0, ly0:ly1, lx0:lx1, :]))
    # whole levels differ too much in size to share a call; windows are batched when their sides are even
    even = [item for item in windows if region.window is not None and item[3].shape[0] % 2 == 0
            and item[3].shape[1] % 2 == 0]
    groups = [even] if even else []
    groups += [[item] for item in windows if not any(item is e for e in even)]
    found: dict[float, np.ndarray] = {}
    for group in groups:
        height = max(item[3].shape[0] for item in group)
        width = max(item[3].shape[1] for item in group)
        batch = np.zeros((len(group), height, width, 3), np.float32)
        for i, item in enumerate(group):
            batch[i, :item[3].shape[0], :item[3].shape[1]] = item[3]
        regression, classes = (out.numpy() for out in pnet._model(tf.constant(batch)))
        for i, (scale, lx0, ly0, crop) in enumerate(group):
            rows, cols = _cells(crop.shape[0]), _cells(crop.shape[1])
            boxes = generate_bounding_box(tf.constant(regression[i:i + 1, :rows, :cols]),
                                          tf.constant(classes[i:i + 1, :rows, :cols]), PNET_THRESHOLD)
            if len(boxes) == 0:
                continue
            boxes[:, [1, 3]] += lx0
            boxes[:, [2, 4]] += ly0
            boxes = upscale_bboxes(boxes, np.asarray([scale]))
            found[scale] = smart_nms_from_bboxes(boxes, threshold=PNET_NMS_LEVEL, method="union",
                                                 initial_sort=False)
    return [found[scale] for scale, *_ in windows if scale in found]  # in level order, as StagePNet concatenates


def _on_grid(value: float) -> int:
    return max(0, int(math.floor(value / STRIDE)) * STRIDE)


def _even_end(start: int, end: float, limit: int) -> int:
    """The window's end on a level: past ``end``, within ``limit``, an even distance from ``start`` unless cut."""
    stop = min(limit, math.ceil(end))
    if (stop - start) % 2 and stop < limit:
        stop += 1
    return stop


def _cells(side: int) -> int:
    """PNet's output cells along a side of ``side`` pixels: 3x3 convolution, 2x2 pooling, two 3x3 convolutions."""
    return math.ceil((side - 2) / 2) - 4
