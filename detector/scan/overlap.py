"""Overlapping the stages of one scan, so both cores stay busy on a single video (not only across a folder).

ffmpeg decodes the next sampled frames while MTCNN searches the current one (:func:`prefetch`), and the model scores
finished crops in a second thread while later frames are still being searched (:class:`StreamScorer`). TensorFlow
and OpenCV release the GIL while they compute, so threads are enough; queues are bounded, so memory stays flat
however long the video is.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator, TypeVar

import numpy as np

from detector import config
from detector.face.faces import Observation

T = TypeVar("T")
_POLL_S = 0.1


def prefetch(items: Iterator[T], depth: int = config.DECODE_PREFETCH) -> Iterator[T]:
    """Yield what ``items`` yields, produced in a background thread up to ``depth`` items ahead.

    An exception raised by ``items`` is raised here, at the point it happened in the sequence. Closing this
    generator (or dropping it) stops the thread and closes ``items`` in it, so an ffmpeg pipe is never left open.
    """
    if depth <= 0:
        yield from items
        return
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    break
            else:
                put(("done", None))
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        thread.join()


class StreamScorer:
    """Scores face crops in a background thread as they are found, ``batch`` at a time.

    Use as a context manager around the face search: :meth:`add` each frame's observations, then :meth:`finish`,
    which scores the rest, waits, and sets every observation's ``probability``. ``seconds`` is the time the model
    spent (it overlaps the search, so it is not added to the scan's wall time).
    """

    def __init__(self, detector, batch: int = config.STREAM_BATCH, batch_size: int = config.BATCH_SIZE):
        self.detector = detector
        self.batch = max(1, batch)
        self.batch_size = batch_size
        self.seconds = 0.0
        self._waiting: list[Observation] = []
        self._jobs: list[tuple[list[Observation], Future]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")

    def __enter__(self) -> "StreamScorer":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, observations: list[Observation]) -> None:
        self._waiting.extend(observations)
        if len(self._waiting) >= self.batch:
            self._submit()

    def finish(self) -> float:
        """Score what is left, wait for every batch and set the probabilities; returns the model's seconds."""
        self._submit()
        for observations, job in self._jobs:
            for obs, p in zip(observations, job.result()):
                obs.probability = float(p)
        self._jobs.clear()
        return self.seconds

    def _submit(self) -> None:
        if self._waiting:
            batch, self._waiting = self._waiting, []
            self._jobs.append((batch, self._pool.submit(self._score, np.stack([o.crop for o in batch]))))

    def _score(self, crops: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        try:
            return self.detector.predict(crops, self.batch_size)
        finally:
            self.seconds += time.perf_counter() - t
