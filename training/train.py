"""Train the detector on self-blended images (and real labelled fakes when a dataset has them).

    python -m training.train --data data_cache/videos --data data_cache/lfw --eval-data data_cache/labeled \\
        --backbone efficientnet-lite0 --weights imagenet --epochs 12 --steps-per-epoch 150 --out runs/lite0

Every batch holds real crops and self-blended fakes made from the *same* crops on the fly (no fake files on disk), so
the only thing separating the classes is the blend: the model has to learn blending boundaries and colour/frequency
mismatches, which is what face-swap and reenactment methods leave behind. Crops come from ``training.prepare``, i.e.
from the scanner's own ingestion and MTCNN code.

Two modes: ``finetune`` (the default: Keras fit on tf.data, AdamW + cosine schedule, BatchNorm trainable, checkpoints,
resumable, CSV/TensorBoard logs, checkpoint chosen by video-level AUC on ``--eval-data``) and ``features`` (cache
frozen-backbone embeddings once as .npy, then fit a small head in seconds: a quick way to compare backbones).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from detector import config
from training.data.crops import face_box_in_crop
from detector.models.classifier import DeepfakeClassifier  # also registers the class: runs load their checkpoints back

log = logging.getLogger(__name__)


@dataclass
class Crop:
    """One prepared face crop in memory: pixels, dense landmarks for the blend mask, and its bookkeeping."""

    image: np.ndarray
    landmarks: np.ndarray
    label: int
    group: str
    item: str
    split: str
    dataset: str = ""


def load_crops(data_dirs: list[Path], size: int, landmark_model=None, max_per_item: int | None = None,
               show_progress: bool = True) -> list[Crop]:
    """Load prepared crops and their dense landmarks (computed once per dataset and cached in ``landmarks_*.npz``)."""
    from tqdm import tqdm

    from training.data.crops import load_index, read_crop

    crops: list[Crop] = []
    for data_dir in data_dirs:
        rows = load_index(data_dir)
        if max_per_item:
            seen: dict[str, int] = {}
            kept = []
            for row in rows:
                seen[row["item"]] = seen.get(row["item"], 0) + 1
                if seen[row["item"]] <= max_per_item:
                    kept.append(row)
            rows = kept
        cache_path = data_dir / f"landmarks_{landmark_model.name if landmark_model else 'none'}.npz"
        cache = dict(np.load(cache_path)) if cache_path.exists() else {}
        dirty = False
        box = face_box_in_crop(size)
        for row in tqdm(rows, desc=f"load {data_dir.name}", unit="crop", disable=not show_progress):
            image = read_crop(row["crop"], size)
            key = Path(row["crop"]).relative_to(data_dir).as_posix()
            if landmark_model is not None:
                if key not in cache:
                    kps = np.asarray(row["keypoints"], np.float32).reshape(-1, 2)
                    cache[key] = np.asarray(landmark_model.predict(image, box, kps), np.float32)
                    dirty = True
                landmarks = cache[key]
            else:
                landmarks = np.asarray(row["keypoints"], np.float32).reshape(-1, 2)
            crops.append(Crop(image, landmarks, int(row["label"]), row["group"], row["item"], row["split"],
                              data_dir.name))
        if dirty:
            np.savez_compressed(cache_path, **cache)
    return crops


class PairSampler:
    """Yields (image, label) pairs: for each real crop drawn, the augmented crop (0) and its self-blend (1).

    Each prepared dataset is drawn equally often, whatever its size, so a few thousand stills cannot drown out the
    video frames the scanner will actually see. Real labelled fakes (label 1 in a dataset) are mixed in at
    ``real_fake_share`` of the fake half when present. Deterministic given the seed, so a run can be reproduced.
    """

    def __init__(self, crops: list[Crop], seed: int, real_fake_share: float = 0.5, augment: bool = True):
        from training.data import sbi as blend

        self.blend = blend
        self.reals = [c for c in crops if c.label == 0]
        self.fakes = [c for c in crops if c.label == 1]
        if not self.reals:
            raise ValueError("no real crops to self-blend from")
        by_dataset: dict[str, list[Crop]] = {}
        for crop in self.reals:
            by_dataset.setdefault(crop.dataset, []).append(crop)
        self.real_pools = [by_dataset[k] for k in sorted(by_dataset)]
        self.rng = np.random.default_rng(seed)
        self.real_fake_share = real_fake_share if self.fakes else 0.0
        self.augment = augment

    def _aug(self, image: np.ndarray) -> np.ndarray:
        return self.blend.augment(image, self.rng) if self.augment else image

    def pair(self) -> list[tuple[np.ndarray, int]]:
        pool = self.real_pools[self.rng.integers(len(self.real_pools))]
        real = pool[self.rng.integers(len(pool))]
        if self.fakes and self.rng.random() < self.real_fake_share:
            fake_image = self.fakes[self.rng.integers(len(self.fakes))].image
        else:
            fake_image, _ = self.blend.self_blend(real.image, real.landmarks, self.rng)
        return [(self._aug(real.image), 0), (self._aug(fake_image), 1)]

    def __call__(self):
        while True:
            for image, label in self.pair():
                yield image, np.float32(label)


def fixed_set(crops: list[Crop], n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed validation set of real/self-blended pairs (no augmentation), so epochs are comparable."""
    sampler = PairSampler(crops, seed, augment=False)
    images, labels = [], []
    for _ in range(n_pairs):
        for image, label in sampler.pair():
            images.append(image)
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.float32)


def make_dataset(sampler: PairSampler, size: int, batch_size: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_generator(
        sampler, output_signature=(tf.TensorSpec((size, size, 3), tf.uint8), tf.TensorSpec((), tf.float32)))
    return ds.map(lambda x, y: (tf.cast(x, tf.float32), y)).batch(batch_size).prefetch(2)


def video_scores(rows: list[dict], probs: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per item: its score by the scanner's own rule, over the tracks the scan would count."""
    from detector.scan import aggregate

    tracks = aggregate.tracks_from_rows(rows, probs)
    labels = {row["item"]: int(row["label"]) for row in rows}
    items = sorted(tracks)
    scores = np.array([tracks[i].score() for i in items])
    return items, np.array([labels[i] for i in items]), scores


class EvalCallback(keras.callbacks.Callback):
    """After each epoch: AUC on the fixed self-blended validation set and video-level AUC on a prepared labelled
    set; keeps the checkpoint with the best labelled video AUC (self-blend AUC breaks ties)."""

    def __init__(self, val, eval_rows: list[dict], eval_images: np.ndarray, out_dir: Path, history: list):
        super().__init__()
        self.val, self.eval_rows, self.eval_images = val, eval_rows, eval_images
        self.out_dir, self.history = out_dir, history
        self.best = (-1.0, -1.0)

    def on_epoch_end(self, epoch, logs=None):
        from sklearn.metrics import roc_auc_score as roc_auc

        logs = logs if logs is not None else {}
        val_probs = self.model.predict(self.val[0].astype(np.float32), batch_size=32, verbose=0).reshape(-1)
        sbi_auc = roc_auc(self.val[1], val_probs)
        video_auc = -1.0
        if self.eval_rows:
            probs = self.model.predict(self.eval_images.astype(np.float32), batch_size=32, verbose=0).reshape(-1)
            _, labels, scores = video_scores(self.eval_rows, probs)
            video_auc = roc_auc(labels, scores) if len(set(labels.tolist())) == 2 else -1.0
        logs["val_sbi_auc"], logs["eval_video_auc"] = sbi_auc, video_auc
        entry = {"epoch": epoch + 1, **{k: round(float(v), 5) for k, v in logs.items()
                                        if isinstance(v, (int, float, np.floating))}}
        self.history.append(entry)
        print(f"\nepoch {epoch + 1}: self-blend val AUC {sbi_auc:.4f}, labelled video AUC {video_auc:.4f}",
              flush=True)
        if (video_auc, sbi_auc) > self.best:
            self.best = (video_auc, sbi_auc)
            self.model.save(self.out_dir / "best.keras")
            (self.out_dir / "best.json").write_text(json.dumps(entry, indent=2))


def build_model(backbone: str, weights: str | None, size: int, train_backbone: bool = True):
    model = DeepfakeClassifier(backbone, image_size=size, weights=weights)
    model.freeze_backbone(not train_backbone)
    return model


def threshold_at_eer(labels: np.ndarray, probs: np.ndarray) -> float:
    from detector.evaluate.metrics import equal_error_rate

    return float(equal_error_rate(labels, probs)[1])


def run_finetune(args, train_crops, val, eval_rows, eval_images, out_dir: Path) -> dict:
    if args.init:
        # e.g. a --mode features run: its head already fits the frozen features, so fine-tuning starts from a
        # sensible classifier instead of a random head pulling the pretrained features around ("linear probe, then
        # fine-tune", which keeps more of what the backbone knew and tends to transfer better)
        model = keras.models.load_model(args.init, compile=False)
        for layer in model.layers:
            layer.trainable = True
    else:
        model = build_model(args.backbone, args.weights, args.image_size, train_backbone=True)
    total_steps = args.epochs * args.steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.lr * 0.1, decay_steps=max(1, total_steps - args.warmup_steps),
        warmup_target=args.lr, warmup_steps=args.warmup_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=0.05),
                  metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="acc")],
                  jit_compile=False)
    sampler = PairSampler(train_crops, args.seed)
    ds = make_dataset(sampler, args.image_size, args.batch_size)
    history: list[dict] = []
    callbacks = [
        EvalCallback(val, eval_rows, eval_images, out_dir, history),
        keras.callbacks.CSVLogger(str(out_dir / "log.csv"), append=True),
        keras.callbacks.BackupAndRestore(str(out_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(out_dir / "last.keras")),
        keras.callbacks.EarlyStopping(monitor="val_sbi_auc", mode="max", patience=args.patience,
                                      restore_best_weights=False),
    ]
    if importlib.util.find_spec("tensorboard") is not None:  # optional: tensorflow-cpu does not pull it in
        callbacks.append(keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), write_graph=False,
                                                     profile_batch=0))
    model.fit(ds, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, callbacks=callbacks, verbose=2)
    return {"history": history, "images_seen": args.epochs * args.steps_per_epoch * args.batch_size}


def run_features(args, train_crops, val, eval_rows, eval_images, out_dir: Path) -> dict:
    """Frozen backbone: embed a fixed set of real/self-blended pairs once (cached .npy), then fit the head."""
    model = build_model(args.backbone, args.weights, args.image_size, train_backbone=False)
    embed = model.embedder()
    cache = out_dir / f"features_{args.backbone}_{args.feature_pairs}_{args.seed}.npz"
    if cache.exists():
        data = np.load(cache)
        feats, labels = data["x"], data["y"]
    else:
        sampler = PairSampler(train_crops, args.seed)
        images, label_list = [], []
        for _ in range(args.feature_pairs):
            for image, label in sampler.pair():
                images.append(image)
                label_list.append(label)
        feats = embed.predict(np.stack(images).astype(np.float32), batch_size=32, verbose=1)
        labels = np.asarray(label_list, np.float32)
        np.savez_compressed(cache, x=feats, y=labels)
    head_in = keras.Input(feats.shape[1:])
    x = keras.layers.Dropout(0.2)(head_in)
    head_out = keras.layers.Dense(1, activation="sigmoid")(x)
    head = keras.Model(head_in, head_out)
    head.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4), loss="binary_crossentropy",
                 jit_compile=False)
    head.fit(feats, labels, epochs=args.epochs, batch_size=64, verbose=2, shuffle=True)
    model.head.set_weights(head.layers[-1].get_weights())
    history: list[dict] = []
    callback = EvalCallback(val, eval_rows, eval_images, out_dir, history)
    callback.set_model(model)
    callback.on_epoch_end(0)
    return {"history": history, "images_seen": len(labels)}


def logged_outcome(args) -> dict:
    """History and images seen of a run that did not finish in this process, from its CSV log (fine-tuning) or its
    best.json (feature mode): what a killed, interrupted or resumed run leaves on disk."""
    log_path = args.out / "log.csv"
    history: list[dict] = []
    if log_path.exists():
        with log_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                history.append({"epoch": int(row["epoch"]) + 1,
                                **{k: round(float(v), 5) for k, v in row.items() if k != "epoch" and v}})
    elif (args.out / "best.json").exists():
        history.append(json.loads((args.out / "best.json").read_text()))
    if args.mode == "finetune":
        images_seen = len(history) * args.steps_per_epoch * args.batch_size
    else:
        images_seen = 2 * args.feature_pairs
    return {"history": history, "images_seen": images_seen}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, action="append", required=True, help="prepared dataset (training.prepare)")
    p.add_argument("--eval-data", type=Path, help="prepared labelled dataset for checkpoint selection")
    p.add_argument("--backbone", default=config.DEFAULT_BACKBONE,
                   help=f"a registered backbone (default {config.DEFAULT_BACKBONE}, the shipped model's)")
    p.add_argument("--weights", default="imagenet", help="none, imagenet, or a .keras/.pth path")
    p.add_argument("--mode", choices=("finetune", "features"), default="finetune")
    p.add_argument("--init", type=Path, help="start fine-tuning from this whole-model .keras checkpoint (same "
                                             "backbone), e.g. the best.keras of a --mode features run")
    p.add_argument("--image-size", type=int, default=config.IMAGE_SIZE)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (half real, half fake)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--patience", type=int, default=4, help="early stopping patience on self-blend val AUC")
    p.add_argument("--val-pairs", type=int, default=150, help="fixed self-blend validation pairs")
    p.add_argument("--feature-pairs", type=int, default=1500, help="pairs embedded in features mode")
    p.add_argument("--max-per-item", type=int, help="use at most this many crops per video")
    p.add_argument("--landmarks", choices=("dlib", "five"), default="dlib")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, summary)")
    p.add_argument("--summarize-only", action="store_true",
                   help="train nothing: write summary.json (threshold, history) for the run folder's best.keras, "
                        "e.g. after a run was killed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    weights = None if args.weights == "none" else args.weights

    from training.data.dense_landmarks import load_landmark_model

    keras.utils.set_random_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    landmark_model = load_landmark_model(prefer=args.landmarks)
    crops = load_crops(args.data, args.image_size, landmark_model, args.max_per_item)
    train_crops = [c for c in crops if c.split == "train"]
    val_crops = [c for c in crops if c.split == "val" and c.label == 0]
    if not train_crops or not val_crops:
        print("error: the prepared data has no train or no val split (check --val-fraction in prepare)",
              file=sys.stderr)
        return 2
    val = fixed_set(val_crops, args.val_pairs, args.seed + 1)
    eval_rows, eval_images = [], np.zeros((0, args.image_size, args.image_size, 3), np.uint8)
    if args.eval_data:
        from training.data.crops import load_index, read_crop

        eval_rows = load_index(args.eval_data)
        eval_images = np.stack([read_crop(r["crop"], args.image_size) for r in eval_rows])
    print(f"train crops {len(train_crops)} ({len({c.group for c in train_crops})} groups), val crops "
          f"{len(val_crops)}, eval crops {len(eval_rows)}", flush=True)
    args.weights = weights
    runner = run_finetune if args.mode == "finetune" else run_features
    if args.summarize_only:
        outcome = logged_outcome(args)
    else:
        try:
            outcome = runner(args, train_crops, val, eval_rows, eval_images, args.out)
        except KeyboardInterrupt:  # Ctrl-C ends training early but still leaves a usable, summarized run
            print("\ninterrupted: summarizing the best checkpoint so far", file=sys.stderr, flush=True)
            outcome = logged_outcome(args)
    if not (args.out / "best.keras").exists():
        print(f"error: {args.out / 'best.keras'} does not exist: no epoch has finished", file=sys.stderr)
        return 2

    best = keras.models.load_model(args.out / "best.keras", compile=False)
    val_probs = best.predict(val[0].astype(np.float32), batch_size=32, verbose=0).reshape(-1)
    summary = {
        "backbone": args.backbone, "weights": args.weights or "none", "mode": args.mode,
        "image_size": args.image_size, "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "landmarks": landmark_model.name,
        "train_crops": len(train_crops), "train_groups": len({c.group for c in train_crops}),
        "val_crops": len(val_crops), "images_seen": outcome["images_seen"],
        "threshold": threshold_at_eer(val[1], val_probs),
        "threshold_source": "EER point on held-out self-blended validation pairs (identities unseen in training)",
        "best": json.loads((args.out / "best.json").read_text()), "history": outcome["history"],
        "seconds": None if args.summarize_only else round(time.time() - started, 1),
        "data": [str(d) for d in args.data],
        # the command that trained the run (a --summarize-only pass only wrote this file)
        "command": "python -m training.train " + " ".join(
            a for a in (sys.argv[1:] if argv is None else argv) if a != "--summarize-only"),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
