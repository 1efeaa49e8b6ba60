"""Self-blended images (the idea of Shiohara & Yamasaki, CVPR 2022), written for this project.

From one real face crop we make a "fake" by blending a slightly altered copy of the same face back into it through a
face-shaped mask. Identity and expression stay the same, so the only evidence left is what face swapping and
reenactment also leave behind: a blending boundary, a colour mismatch and a sharpness mismatch between the inner face
and its surroundings. A detector trained to see those cues needs no real deepfakes (which are licence-bound).

Everything is numpy/OpenCV and deterministic for a given ``np.random.Generator``.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Blend ratios: mostly full blends, sometimes partial ones (subtle fakes).
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
#: The face regions a blend can cover, as indices of dlib's 68 landmarks (None: the whole face, forehead added).
#: Not every manipulation replaces the whole face: reenactment and neural rendering redraw the inner face, lip-sync
#: only the mouth and jaw. A blend confined to such a region leaves its seam where they leave theirs (Face X-ray
#: blends through masks of varied landmark subsets for the same reason).
REGIONS: dict[str, tuple[int, ...] | None] = {
    "face": None,
    # brows, nose, eyes and mouth: the inner face, without the jaw line or the forehead
    "inner": tuple(range(17, 68)),
    # jaw from cheek to cheek, the lower nose and the mouth: the region lip-sync redraws
    "lower": (*range(2, 15), *range(30, 36), *range(48, 68)),
}


def _odd(n: float) -> int:
    n = max(1, int(n))
    return n if n % 2 else n + 1


def hull_points(landmarks: np.ndarray, rng: np.random.Generator, region: str = "face") -> np.ndarray:
    """Points whose convex hull covers the face, or one of its :data:`REGIONS`.

    With dlib's 68 points the hull stops at the brows, so a forehead is added by lifting the brow points by a random
    share of the brow-to-chin height. With fewer points (MTCNN's five) an ellipse is fitted around them, whatever the
    region.
    """
    pts = np.asarray(landmarks, np.float32)
    subset = REGIONS[region]
    if len(pts) >= 68 and subset is not None:
        return pts[list(subset)]
    if len(pts) >= 68:
        brows = pts[17:27]
        chin = pts[8]
        height = float(np.linalg.norm(brows.mean(axis=0) - chin))
        lift = rng.uniform(0.0, 0.35) * height
        forehead = brows - np.array([0.0, lift], np.float32)
        return np.concatenate([pts[:27], forehead])
    return five_point_outline(pts)


def five_point_outline(kps: np.ndarray, n: int = 24) -> np.ndarray:
    """An ellipse around MTCNN's eyes, nose and mouth corners, sized from the eye distance and eye-mouth height."""
    eyes, mouth = kps[:2].mean(axis=0), kps[3:5].mean(axis=0)
    eye_dist = float(np.linalg.norm(kps[1] - kps[0])) or 1.0
    centre = (eyes + mouth) / 2
    up = (eyes - mouth) / (np.linalg.norm(eyes - mouth) + 1e-6)
    right = np.array([-up[1], up[0]], np.float32)
    a, b = 1.05 * eye_dist, 1.45 * max(float(np.linalg.norm(eyes - mouth)), 0.5 * eye_dist)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return (centre + np.outer(np.cos(t) * a, right) + np.outer(np.sin(t) * b, up) + up * 0.15 * b).astype(
        np.float32)


def _elastic(mask: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Warp the mask with a smooth random displacement field, so its outline is not a clean polygon."""
    h, w = mask.shape
    sigma = max(h, w) / 12
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dx *= amplitude / (np.abs(dx).max() + 1e-6)
    dy *= amplitude / (np.abs(dy).max() + 1e-6)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def face_mask(landmarks: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
              region: str = "face") -> np.ndarray:
    """A soft mask in [0, 1] of the face (or one of its :data:`REGIONS`): hull of the landmarks, randomly shrunk or
    grown, warped, then blurred."""
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    hull = cv2.convexHull(np.round(hull_points(landmarks, rng, region)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    size = max(1.0, float(np.sqrt(mask.sum())))
    k = _odd(rng.uniform(0.0, 0.12) * size)
    if k > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = cv2.erode(mask, kernel) if rng.random() < 0.6 else cv2.dilate(mask, kernel)
    mask = _elastic(mask, rng, amplitude=rng.uniform(0.0, 0.05) * size)
    mask = (mask > 0.5).astype(np.float32)
    blur = _odd(rng.uniform(0.05, 0.25) * size)
    mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    if rng.random() < 0.5:
        mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    peak = float(mask.max())
    return np.clip(mask / peak, 0.0, 1.0) if peak > 0 else mask


def _colour_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hue/saturation/value and per-channel shifts plus brightness/contrast: the colour mismatch of a swapped face."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5, 5)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.85, 1.15), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.85, 1.15), 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    out = out * rng.uniform(0.9, 1.1) + rng.uniform(-15, 15, 3)
    return np.clip(out, 0, 255).astype(np.uint8)


def _frequency_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, sharpen or resample: the sharpness mismatch of a generated face pasted into a real frame."""
    choice = rng.integers(3)
    if choice == 0:
        k = _odd(rng.uniform(3, 7))
        return cv2.GaussianBlur(image, (k, k), 0)
    if choice == 1:
        blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(1.0, 2.0))
        amount = rng.uniform(0.3, 1.0)
        return np.clip(image * (1 + amount) - blurred * amount, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    factor = rng.uniform(0.35, 0.75)
    small = cv2.resize(image, (max(1, int(w * factor)), max(1, int(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _shift_scale(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small translation and scale of the source, so the blended face is a little misaligned, as swaps are."""
    h, w = image.shape[:2]
    scale = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    matrix[:, 2] += (tx, ty)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               region: str = "face") -> tuple[np.ndarray, np.ndarray]:
    """(blended uint8 image, blend mask float32 in [0, 1]) for an RGB face crop and its landmarks; ``region`` is
    the part of the face blended (:data:`REGIONS`).

    Pixels where the mask is 0 are copied from ``image`` unchanged, so the fake differs from its source only inside
    the blended region.
    """
    source = image
    steps = [_colour_shift, _frequency_shift]
    rng.shuffle(steps)
    for step in steps:
        if rng.random() < 0.85:
            source = step(source, rng)
    source = _shift_scale(source, rng)
    mask = face_mask(landmarks, image.shape[:2], rng, region) * float(rng.choice(BLEND_RATIOS))
    m = mask[..., None]
    blended = np.round(m * source.astype(np.float32) + (1 - m) * image.astype(np.float32))
    blended = np.clip(blended, 0, 255).astype(np.uint8)
    untouched = mask <= 0
    blended[untouched] = image[untouched]
    return blended, mask.astype(np.float32)


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmentations applied to real and fake alike (so they carry no label): flip, colour, resampling, JPEG."""
    out = image
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = np.clip(out.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255).astype(
            np.uint8)
    if rng.random() < 0.25:
        h, w = out.shape[:2]
        f = rng.uniform(0.5, 0.9)
        out = cv2.resize(cv2.resize(out, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA), (w, h),
                         interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(out)
