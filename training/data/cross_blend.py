"""Cross-identity blends (the idea of Li et al., Face X-ray, CVPR 2020), written for this project.

A self-blend (:mod:`training.data.sbi`) pastes a face back onto itself, so identity, expression and pose always match.
A cross-identity blend pastes another real person's face, chosen because their landmarks are close (a similar pose
and face shape, as a face swap tool would find), aligned to the target by a similarity transform, colour-matched
inside the face region, and blended through the same kind of jittered, warped, blurred mask. What is left to see is
what a face swap leaves: a blending boundary, and two faces' texture, lighting and sharpness meeting at it.

A source can also be the same face at another moment: another crop of the same face track (``expression_share``
of the cross-identity draws, where the track has one). Identity, lighting and camera then match, and what differs
is expression, gaze and a little pose, as where reenactment or lip-sync redraws a face from other frames' motion.

The similarity transform keeps the source's own face shape, so its eyes and mouth need not meet the target's. A face
swap tool draws the new face in the target's shape (a 3D fit, or a network that keeps the target's expression). The
``piecewise`` warp does the same here: the source is warped triangle by triangle of the two landmark sets, so every
landmark lands on the target's, and only texture, lighting and the seam are left to give it away.

Everything is numpy/OpenCV and deterministic for a given ``np.random.Generator``.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator

from training.data.sbi import BLEND_RATIOS, REGIONS, face_mask, self_blend

#: How many of the closest candidates (by landmarks) the source is drawn from: the nearest alone would pair the
#: same two faces every time.
NEAREST = 5
#: The partial regions a ``region_share`` of the fakes blend (every region but the whole face).
PART_REGIONS = tuple(name for name, subset in REGIONS.items() if subset is not None)
#: How the source face is brought onto the target's: one similarity transform, or piecewise-affine by landmarks.
WARPS = ("similarity", "piecewise")


def normalised_shape(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks centred and scaled to unit spread: a pose and face-shape signature comparable across crops."""
    pts = np.asarray(landmarks, np.float64)
    centred = pts - pts.mean(axis=0)
    return (centred / (np.sqrt((centred ** 2).sum(axis=1).mean()) + 1e-9)).ravel()


def nearest_sources(target: np.ndarray, candidates: np.ndarray, k: int = NEAREST) -> np.ndarray:
    """Indices of the ``k`` candidates whose :func:`normalised_shape` is closest to the target's, nearest first.
    ``target`` is one shape (2L,), ``candidates`` (N, 2L)."""
    distances = np.linalg.norm(candidates - target[None], axis=1)
    return np.argsort(distances, kind="stable")[:k]


def choose_source(k: int, shapes: np.ndarray, groups: list[str], rng: np.random.Generator,
                  candidates: int = 200) -> int | None:
    """For the face ``k`` of a set (its :func:`normalised_shape` rows ``shapes`` and ``groups``), another face to
    paste onto it: from a different group (another person or video), among the ``NEAREST`` closest in shape of up
    to ``candidates`` drawn at random. None when every face shares ``k``'s group."""
    others = np.flatnonzero(np.asarray(groups) != groups[k])
    if others.size == 0:
        return None
    drawn = rng.choice(others, size=min(candidates, others.size), replace=False)
    return int(drawn[rng.choice(nearest_sources(shapes[k], shapes[drawn]))])


def _match_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``source`` with each LAB channel's mean and spread inside ``mask`` moved to the target's there."""
    inside = mask > 0.5
    if inside.sum() < 16:
        return source
    src = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    tgt = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    for c in range(3):
        s, t = src[..., c][inside], tgt[..., c][inside]
        src[..., c] = (src[..., c] - s.mean()) * (t.std() / (s.std() + 1e-6)) + t.mean()
    return cv2.cvtColor(np.clip(src, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def piecewise_map(source_landmarks: np.ndarray, target_landmarks: np.ndarray,
                  shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """For every pixel of a ``shape`` (h, w) target, where to read the source (``cv2.remap``'s x and y maps):
    linear inside each triangle of the target's landmarks (Delaunay), so each landmark reads its source twin, and
    the similarity transform between the two sets beyond them (anchored by points on the image border). None when
    no similarity transform links the two sets or the target's points cannot be triangulated (degenerate
    landmarks)."""
    src = np.asarray(source_landmarks, np.float64)
    dst = np.asarray(target_landmarks, np.float64)
    h, w = shape
    matrix, _ = cv2.estimateAffinePartial2D(dst.astype(np.float32), src.astype(np.float32))
    if matrix is None:
        return None
    edge_x, edge_y = np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5)
    border = np.array([(x, y) for x in edge_x for y in edge_y if x in (0, w - 1) or y in (0, h - 1)], np.float64)
    try:
        interpolate = LinearNDInterpolator(np.concatenate([dst, border]),
                                           np.concatenate([src, border @ matrix[:, :2].T + matrix[:, 2]]))
    except ValueError:  # a flat set of points: no triangulation
        return None
    ys, xs = np.mgrid[0:h, 0:w]
    where = interpolate(np.stack([xs.ravel(), ys.ravel()], axis=1)).astype(np.float32)
    if not np.isfinite(where).all():
        return None
    return where[:, 0].reshape(h, w), where[:, 1].reshape(h, w)


def _warp(source: np.ndarray, source_landmarks: np.ndarray, target_landmarks: np.ndarray, shape: tuple[int, int],
          warp: str) -> np.ndarray:
    """``source`` brought onto the target's landmarks by one of :data:`WARPS` (piecewise falls back to the
    similarity transform on landmarks it cannot triangulate)."""
    h, w = shape
    if warp == "piecewise":
        maps = piecewise_map(source_landmarks, target_landmarks, shape)
        if maps is not None:
            return cv2.remap(source, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    elif warp != "similarity":
        raise ValueError(f"unknown warp {warp!r}: one of {', '.join(WARPS)}")
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(source_landmarks, np.float32),
                                            np.asarray(target_landmarks, np.float32))
    if matrix is None:  # degenerate landmarks: fall back to pasting the source as it is
        matrix = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    return cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def cross_blend(target: np.ndarray, target_landmarks: np.ndarray, source: np.ndarray,
                source_landmarks: np.ndarray, rng: np.random.Generator,
                region: str = "face", warp: str = "similarity") -> tuple[np.ndarray, np.ndarray]:
    """(blended uint8 image, blend mask float32 in [0, 1]): ``source``'s face warped onto ``target``'s (by the
    similarity transform between their landmarks, or ``piecewise`` by their triangles: :data:`WARPS`),
    colour-matched, blended through a mask of the target's face (or of one of its regions,
    :data:`training.data.sbi.REGIONS`).

    Pixels where the mask is 0 are the target's own, so the fake differs from the real crop only inside the blend.
    """
    h, w = target.shape[:2]
    warped = _warp(source, source_landmarks, target_landmarks, (h, w), warp)
    mask = face_mask(target_landmarks, (h, w), rng, region)
    warped = _match_colour(warped, target, mask)
    mask = mask * float(rng.choice(BLEND_RATIOS))
    m = mask[..., None]
    blended = np.clip(np.round(m * warped.astype(np.float32) + (1 - m) * target.astype(np.float32)), 0, 255)
    blended = blended.astype(np.uint8)
    untouched = mask <= 0
    blended[untouched] = target[untouched]
    return blended, mask.astype(np.float32)


class BlendSources:
    """The real crops of a pack that synthetic fakes are made from (``indices`` into ``crops``), with the landmark
    signatures and groups :func:`choose_source` draws a cross-identity source by. The recipe's batches and the
    synthetic probe make their fakes here, so both make them alike."""

    def __init__(self, crops: list[dict], indices: list[int]):
        self.crops = crops
        self.indices = list(indices)
        self.shapes = np.stack([normalised_shape(crops[i]["landmarks"]) for i in self.indices]) \
            if self.indices else np.zeros((0, 0))
        self.groups = [crops[i]["group"] for i in self.indices]
        keys = [(crops[i].get("role"), crops[i].get("item"), crops[i].get("track")) for i in self.indices]
        tracks: dict[tuple, list[int]] = {}
        for k, key in enumerate(keys):
            tracks.setdefault(key, []).append(k)
        #: for each source, the other sources of its face track (other frames of the same face)
        self.track_mates = [[m for m in tracks[key] if m != k] for k, key in enumerate(keys)]

    def __len__(self) -> int:
        return len(self.indices)

    def _landmarks(self, k: int) -> np.ndarray:
        return np.asarray(self.crops[self.indices[k]]["landmarks"], np.float32)

    def fake(self, k: int, images: np.ndarray, rng: np.random.Generator, cross: bool,
             region_share: float = 0.0, warp_share: float = 0.0, expression_share: float = 0.0) -> np.ndarray:
        """A fake of source ``k``'s crop: with ``cross``, a cross-identity blend of a close source of another group;
        without it, or when there is none, a self-blend. ``expression_share`` of the cross draws take their source
        from ``k``'s own face track instead (another frame of the same face; a track of one crop falls back to another
        group). ``region_share`` of them blend only the inner or the lower face (:data:`training.data.sbi.REGIONS`,
        either alike), the rest the whole face; ``warp_share`` of the blends take the target's face shape (the
        ``piecewise`` warp), the rest keep their own."""
        other = None
        # no draw at share 0, so such fakes are the recipe's before the option, number for number
        if cross and expression_share > 0 and rng.random() < expression_share and self.track_mates[k]:
            other = self.track_mates[k][int(rng.integers(len(self.track_mates[k])))]
        if other is None and cross:
            other = choose_source(k, self.shapes, self.groups, rng)
        target = images[self.indices[k]]
        # no draw at share 0, so such fakes are the whole-face recipe's, number for number
        region = str(rng.choice(PART_REGIONS)) if region_share > 0 and rng.random() < region_share else "face"
        if other is None:
            return self_blend(target, self._landmarks(k), rng, region)[0]
        warp = "piecewise" if warp_share > 0 and rng.random() < warp_share else "similarity"
        return cross_blend(target, self._landmarks(k), images[self.indices[other]], self._landmarks(other), rng,
                           region, warp)[0]
