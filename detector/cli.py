"""The command line: ``python app.py`` in a checkout, ``deepfake-detector`` once installed with pip.

    python app.py --input VIDEO_OR_FOLDER --output RESULTS_DIR      (or: deepfake-detector scan --input ...)
    python app.py --input s3://bucket/videos --output s3://bucket/results --engine ray   # on Ray Data
    python app.py serve --port 8000          # web page and REST API (see detector/serve/server.py)
    python app.py --evaluate labels.csv --output runs/eval          (or: deepfake-detector evaluate labels.csv ...)

Thin on purpose: argument parsing and wiring; the work lives in the rest of the ``detector`` package. Nothing heavy
is imported before the arguments and the input are checked, so a bad path is answered in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path

from detector import config
from detector import logs
from detector.scan.aggregate import RULES
from detector.errors import DetectorError
from detector.ingest.storage import is_remote, join
from detector.scan.options import ScanOptions


#: Name of the installed command (``[project.scripts]`` in pyproject.toml).
COMMAND = "deepfake-detector"


def program_name() -> str:
    """What usage lines call the program: ``app.py`` when run as such, else the installed command's name."""
    return "app.py" if os.path.basename(sys.argv[0]) == "app.py" else COMMAND


def add_verbose(p: argparse.ArgumentParser) -> None:
    """The ``--verbose`` flag every subcommand shares (the libraries' log lines are hidden otherwise)."""
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show informational messages and the libraries' own log lines (TensorFlow, absl)")


def failed(exc: BaseException) -> int:
    """Say why a command stopped, in one line on stderr, and return its exit status: 130 for an interrupt (as a
    shell reports Ctrl-C), 2 for anything the user can fix (a bad input, model or setting)."""
    if isinstance(exc, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        return 130
    print(f"error: {exc}", file=sys.stderr)
    return 2


def scan_options_parent() -> argparse.ArgumentParser:
    """The scan settings that scan, serve and evaluate share, declared once, each with :class:`ScanOptions`' own
    default (see :func:`scan_options`, :func:`check_scan_options`)."""
    defaults = ScanOptions()
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_argument_group("scan settings (scan, serve and evaluate alike)")
    sampling = group.add_mutually_exclusive_group()
    sampling.add_argument("--frames", type=int, default=defaults.frames,
                          help=f"frames sampled per video, evenly spaced (default {defaults.frames})")
    sampling.add_argument("--fps", type=float, help="sample this many frames per second instead of --frames")
    group.add_argument("--exact-frames", action="store_true",
                       help="decode every frame and take exactly the evenly spaced ones (slower; by default frames "
                            "no other frame refers to are skipped, so a sample may be a frame or two later)")
    group.add_argument("--threshold", type=float, help="fake-probability threshold (default: the model card's)")
    group.add_argument("--max-faces", type=int, default=defaults.max_faces,
                       help=f"face tracks kept per video (default {defaults.max_faces})")
    group.add_argument("--min-face", type=int, default=defaults.min_face,
                       help=f"ignore faces smaller than this many pixels (default {defaults.min_face})")
    group.add_argument("--batch-size", type=int, default=defaults.batch_size,
                       help=f"model batch size (default {defaults.batch_size})")
    group.add_argument("--aggregation", choices=RULES, default=defaults.aggregation,
                       help=f"how a face track's frames are pooled (default {defaults.aggregation})")
    group.add_argument("--no-gradcam", action="store_true", help="skip Grad-CAM heatmaps (faster)")
    group.add_argument("--no-temporal", action="store_true",
                       help="skip the temporal evidence (landmark motion in windows of consecutive frames)")
    group.add_argument("--cam", choices=("gradcam", "gradcam++"), default=defaults.cam_method,
                       help=f"explanation method (default {defaults.cam_method})")
    group.add_argument("--model", type=Path, help="a model folder, SavedModel or .keras file exported by our "
                                                  "training (default: saved_model/deepfake)")
    group.add_argument("--trusted-signers", type=Path, metavar="PEM", default=config.TRUSTED_SIGNERS,
                       help="PEM file of the certificate authorities whose content-credential signers you trust "
                            "(default: none, so every signer is reported as 'not verified')")
    return p


def progress_parent() -> argparse.ArgumentParser:
    """``--quiet``, for the commands that show progress bars (scan and evaluate; the server shows none)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


def check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """The one positive-number check: each named option, when given, must be above zero."""
    for name in names:
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            what = "a positive number of frames per second" if name == "fps" else "positive"
            parser.error(f"--{name.replace('_', '-')} must be {what} (got {value:g})")


def check_scan_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What :func:`scan_options_parent`'s settings must satisfy, for every command that takes them."""
    check_positive(parser, args, "frames", "fps", "max_faces", "min_face", "batch_size")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        parser.error("--threshold must be between 0 and 1")


def scan_options(args: argparse.Namespace, trusted_signers: str | None = None) -> ScanOptions:
    """The :class:`ScanOptions` that :func:`scan_options_parent`'s settings describe (``trusted_signers``: the PEM
    text of ``--trusted-signers``, read by the caller)."""
    return ScanOptions(frames=args.frames, fps=args.fps, threshold=args.threshold, max_faces=args.max_faces,
                       min_face=args.min_face, batch_size=args.batch_size, aggregation=args.aggregation,
                       gradcam=not args.no_gradcam, cam_method=args.cam, trusted_signers=trusted_signers,
                       temporal=not args.no_temporal,
                       exact_frames=args.exact_frames)


class _Parser(argparse.ArgumentParser):
    """argparse, with a hint when an option's value looks like an option itself (a file named '-x.mp4')."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if "expected one argument" in message:
            name = message.split("argument ", 1)[-1].split(":", 1)[0].split("/")[0]
            message += (f" (a value that starts with '-' must be attached to its option, {name}=-x.mp4, or "
                        "start with ./, as in ./-x.mp4)")
        super().error(message)


def scan_parser(prog: str = "app.py") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog, parents=[scan_options_parent(), progress_parent()],
        description="Scan videos or images for deepfaked faces. Writes RESULTS_DIR/<name>/result.json, "
                    "report.html and Grad-CAM heatmaps per input, and RESULTS_DIR/summary.csv.",
        epilog="Exit status: 0 all inputs scanned, 1 some inputs of a folder failed, 2 the input or options are "
               f"unusable. '{prog} serve --help' describes the web page and REST API.")
    p.add_argument("--input", "-i", help="a video or image file, or a folder (scanned recursively); with --engine ray "
                                         "also an s3:// or gs:// URI of an object or a prefix")
    p.add_argument("--output", "-o", default="results",
                   help="results folder (default: results); with --engine ray also an s3:// or gs:// URI")
    p.add_argument("--serving-url", metavar="URL",
                   help="score faces on a TF Serving model server (e.g. http://host:8501/v1/models/deepfake) "
                        "instead of loading the model in-process")
    p.add_argument("--evaluate", type=Path, metavar="MANIFEST",
                   help="evaluate the model on a labelled manifest (CSV path,label) instead of scanning")
    p.add_argument("--workers", type=int, default=0,
                   help="decode and detect faces in N worker processes while the model scores batches across "
                        "videos (for folders; default 0: everything in this process)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this machine's own worker processes (default, starts in seconds); ray: a Ray Data "
                        "pipeline on this machine or a cluster (needs 'make ray'; see docs/scaling.md)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="with --engine ray: 'auto' joins the cluster this machine belongs to, ray://HOST:10001 "
                        "connects a Ray Client (default: start Ray on this machine)")
    p.add_argument("--scorers", type=int, default=config.RAY_SCORERS,
                   help=f"with --engine ray: model actors, each holding the model once (default {config.RAY_SCORERS})")
    p.add_argument("--file-timeout", type=float, default=config.RAY_FILE_TIMEOUT, metavar="SECONDS",
                   help="with --engine ray: a file that takes longer to download, decode and detect ends its worker "
                        f"and, after {config.RAY_RETRIES} retry, gets an error row "
                        f"(default {config.RAY_FILE_TIMEOUT:g})")
    p.add_argument("--overwrite", action="store_true",
                   help="scan inputs again even when RESULTS_DIR already holds their result.json")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_verbose(p)
    return p


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.input is None and args.evaluate is None:
        parser.error("--input is required")
    check_scan_options(parser, args)
    if args.workers < 0:
        parser.error("--workers must be 0 or more")
    if args.engine == "ray":
        if args.serving_url or args.evaluate is not None:
            parser.error("--engine ray scans folders with the in-process model: drop --serving-url / --evaluate")
        check_positive(parser, args, "scorers", "file_timeout")
    else:
        if args.ray_address:
            parser.error("--ray-address needs --engine ray")
        remote = [loc for loc in (args.input, args.output) if loc and is_remote(loc)]
        if remote:
            parser.error(f"{remote[0]}: s3:// and gs:// locations need --engine ray")


def check_inputs(args: argparse.Namespace) -> None:
    """Everything about the input and output that can fail, checked before TensorFlow is imported (seconds), so a
    missing or unusable file is answered at once: the input exists, a single file probes as a video or image, the
    output folder is not the input folder and is writable."""
    from detector.ingest import inputs

    source, target = Path(args.input), Path(args.output)
    inputs.check_output(source, target)
    files, root = inputs.list_inputs(source, target)
    if root is None:
        from detector.ingest import video

        video.probe(files[0])
    inputs.prepare_output(target)


def open_detector(args: argparse.Namespace):
    """The in-process model, or a TF Serving client when --serving-url is given (the local card, if any, supplies
    the threshold, since TF Serving does not serve it)."""
    if not args.serving_url:
        from detector.models.model import load_detector

        return load_detector(args.model)
    from detector.models.scoring import ModelCard
    from detector.models.serving import RestDetector

    card_path = (args.model or config.DEFAULT_MODEL_DIR) / "card.json"
    card = ModelCard.load(card_path) if card_path.is_file() else None
    return RestDetector(args.serving_url, card)


def run_locally(args: argparse.Namespace, options, detector):
    """The local engine: the model in this process, decoding in ``--workers`` processes (inputs and output were
    checked by :func:`check_inputs`)."""
    from detector.engines import batch

    return batch.run(Path(args.input), Path(args.output), detector, options, show_progress=not args.quiet,
                     workers=args.workers, resume=not args.overwrite, worker_stderr=args.verbose)


def run_on_ray(args: argparse.Namespace, options):
    """The Ray Data engine (imported only when asked for: Ray is an optional install)."""
    from detector.engines import engine_ray

    ray_options = engine_ray.RayOptions(address=args.ray_address, workers=args.workers or None, scorers=args.scorers,
                                        file_timeout=args.file_timeout, show_progress=not args.quiet)
    return engine_ray.run(args.input, args.output, options, ray_options, model=args.model,
                          resume=not args.overwrite)


def serve_parser(prog: str = "app.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} serve", parents=[scan_options_parent()],
        description="Serve the upload page and the REST API (OpenAPI document at /openapi.json). Scans run one at "
                    "a time in a background worker; jobs and results are kept under --data-dir.")
    p.add_argument("--host", default=config.SERVE_HOST,
                   help=f"address to listen on (default {config.SERVE_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=config.SERVE_PORT,
                   help=f"port to listen on (default {config.SERVE_PORT})")
    p.add_argument("--data-dir", type=Path, default=config.SERVE_DATA_DIR,
                   help=f"folder for uploads, job status and results (default {config.SERVE_DATA_DIR})")
    p.add_argument("--max-upload-mb", type=float, default=config.MAX_UPLOAD_MB,
                   help=f"largest upload accepted, in MB (default {config.MAX_UPLOAD_MB:g})")
    p.add_argument("--max-queued", type=int, default=config.MAX_QUEUED_SCANS,
                   help=f"uploads are refused (503) while this many scans wait (default {config.MAX_QUEUED_SCANS})")
    p.add_argument("--keep-days", type=float, default=config.KEEP_DAYS,
                   help=f"finished scans (upload and results) are deleted after this many days (default "
                        f"{config.KEEP_DAYS:g})")
    p.add_argument("--keep-scans", type=int, default=config.KEEP_SCANS,
                   help=f"at most this many finished scans are kept, the newest (default {config.KEEP_SCANS})")
    p.add_argument("--keep-gb", type=float, default=config.KEEP_GB,
                   help=f"finished scans are kept only while they take at most this many GB together (default "
                        f"{config.KEEP_GB:g})")
    add_verbose(p)
    return p


def serve_main(argv: list[str], prog: str = "app.py") -> int:
    """``app.py serve``: parse, then hand over to :func:`detector.serve.server.serve`."""
    parser = serve_parser(prog)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    check_scan_options(parser, args)
    check_positive(parser, args, "max_upload_mb", "max_queued", "keep_days", "keep_scans", "keep_gb")
    logs.setup(args.verbose, level=logging.INFO)
    with logs.native_stderr_silenced(not args.verbose):
        from detector.serve.jobs import Retention
        from detector.serve.server import ServeConfig, serve

    retention = Retention(max_age_days=args.keep_days, max_scans=args.keep_scans, max_gb=args.keep_gb)
    try:
        return serve(ServeConfig(host=args.host, port=args.port, data_dir=args.data_dir, model=args.model,
                                 max_upload_mb=args.max_upload_mb, options=scan_options(args),
                                 max_queued=args.max_queued, retention=retention,
                                 trusted_signers=args.trusted_signers))
    except DetectorError as exc:
        return failed(exc)


def evaluate_parser(prog: str = "app.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} evaluate", parents=[scan_options_parent(), progress_parent()],
        description="Evaluate the model on labelled media: every file of MANIFEST (CSV with columns "
                    "path,label[,group]; labels real/fake or 0/1) is scanned like any input, and frame- and "
                    "video-level metrics with "
                    "bootstrap intervals go to OUTPUT/{video,image,all}/metrics.json, metrics.md, roc.png and "
                    "confusion.png, the headline numbers to OUTPUT/summary.json.")
    p.add_argument("manifest", type=Path, metavar="MANIFEST", help="CSV of labelled videos and images")
    p.add_argument("--output", "-o", type=Path, required=True, help="folder for the evaluation report")
    p.add_argument("--serving-url", metavar="URL", help="score faces on a TF Serving model server instead")
    add_verbose(p)
    return p


def evaluate_main(argv: list[str], prog: str = "app.py") -> int:
    """``evaluate MANIFEST``: the same as ``--evaluate MANIFEST``, with the aggregation rule as an option."""
    parser = evaluate_parser(prog)
    args = parser.parse_args(argv)
    check_scan_options(parser, args)
    logs.setup(args.verbose)
    try:
        from detector.ingest.manifest import load_manifest

        load_manifest(args.manifest)  # a missing or malformed manifest is answered before the model loads
        with logs.native_stderr_silenced(not args.verbose):
            from detector.evaluate.evaluation import evaluate_manifest

            detector = open_detector(args)
        return evaluate_manifest(args.manifest, args.output, detector, scan_options(args),
                                 show_progress=not args.quiet)
    except (DetectorError, KeyboardInterrupt) as exc:
        return failed(exc)


def main(argv: list[str] | None = None) -> int:
    """Scan (the default, or ``scan``), ``serve`` or ``evaluate``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    prog = program_name()
    if argv and argv[0] == "serve":
        return serve_main(argv[1:], prog)
    if argv and argv[0] == "evaluate":
        return evaluate_main(argv[1:], prog)
    if argv and argv[0] == "scan":
        argv = argv[1:]
    parser = scan_parser(prog)
    args = parser.parse_args(argv)
    _check(args, parser)
    logs.setup(args.verbose)
    try:
        if args.engine == "ray":
            from detector.engines.engine_ray import import_ray

            import_ray()  # an optional install: say so before anything else is checked
        if args.evaluate is not None:
            from detector.ingest.manifest import load_manifest

            load_manifest(args.evaluate)  # a missing or malformed manifest is answered before the model loads
        elif not (is_remote(args.input) or is_remote(args.output)):
            check_inputs(args)
        from detector.origin.provenance import load_trusted_signers

        trusted = load_trusted_signers(args.trusted_signers) if args.trusted_signers else None
        with logs.native_stderr_silenced(not args.verbose):
            from detector.scan import report

            detector = open_detector(args) if args.engine != "ray" or args.evaluate is not None else None
        if args.evaluate is not None:
            from detector.evaluate.evaluation import evaluate_manifest

            return evaluate_manifest(args.evaluate, Path(args.output), detector, scan_options(args, trusted),
                                     show_progress=not args.quiet)
        options = scan_options(args, trusted)
        outcome = run_on_ray(args, options) if args.engine == "ray" else run_locally(args, options, detector)
    except (DetectorError, KeyboardInterrupt) as exc:
        return failed(exc)
    if args.json:
        print(json.dumps(outcome.rows, indent=2))
    else:
        print(report.format_table(outcome.rows))
        if any(row["provisional"] for row in outcome.rows):
            print("note: no trained model is installed; verdicts are provisional", file=sys.stderr)
        print(f"summary: {outcome.summary_path}")
        if len(outcome.rows) == 1:
            print(f"report: {join(args.output, outcome.rows[0]['name'], 'report.html')}")
    if len(outcome.rows) == 1 and outcome.errors:
        print(f"error: {outcome.errors[0]['error']}", file=sys.stderr)
        return 2
    return 1 if outcome.errors else 0


if __name__ == "__main__":
    sys.exit(main())
