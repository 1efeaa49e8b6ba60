"""Running a scan over one file or a folder: progress, per-input outputs, the summary, and exit status.

One bad file never stops a batch: it gets an ``error`` row and its own result.json, and the rest carry on.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import report
from .errors import DetectorError, InputError
from .model import Detector
from .pipeline import ScanOptions, Scanner, find_media, result_name

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What a run produced: one summary row per input and where the summary was written."""

    rows: list[dict]
    summary_path: Path

    @property
    def errors(self) -> list[dict]:
        return [r for r in self.rows if r["verdict"] == "error"]


def prepare_output(out_dir: Path) -> None:
    """Create the output folder and prove it is writable before any slow work starts."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise DetectorError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None


def list_inputs(input_path: Path) -> tuple[list[Path], Path | None]:
    """The files to scan and the folder their result names are relative to (None for a single file)."""
    if not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    if input_path.is_dir():
        files = find_media(input_path)
        if not files:
            raise InputError(f"{input_path}: no video or image files found in this folder")
        return files, input_path
    return [input_path], None


def run(input_path: Path, out_dir: Path, detector: Detector, options: ScanOptions,
        show_progress: bool = True) -> BatchOutcome:
    """Scan every input, writing ``out_dir/<name>/`` for each and ``out_dir/summary.csv`` at the end."""
    files, root = list_inputs(input_path)
    prepare_output(out_dir)
    scanner = Scanner(detector, options)
    rows = []
    bar = tqdm(files, desc="videos", unit="file", disable=not show_progress or len(files) == 1, file=sys.stderr)
    for path in bar:
        name = result_name(path, root)
        frames_bar = tqdm(total=0, desc=f"{path.name[:30]}", unit="frame", leave=False,
                          disable=not show_progress, file=sys.stderr)

        def progress(done: int, total: int, bar=frames_bar) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        result = scanner.scan(path, name, progress)
        frames_bar.close()
        try:
            doc = report.write_result(result, out_dir, detector.card, detector.source)
        except OSError as exc:
            raise DetectorError(f"cannot write results for {path} to {out_dir}: {exc}") from None
        rows.append(report.summary_row(doc))
        report.write_summary(rows, out_dir)
    summary = report.write_summary(rows, out_dir)
    return BatchOutcome(rows=rows, summary_path=summary)
