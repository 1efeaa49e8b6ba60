"""Reporting: result.json, Grad-CAM PNGs, a timeline plot, a self-contained report.html and the batch summary.

Machine-readable first (JSON/CSV with a stable schema), human-friendly second (PNG and one HTML page with every image
embedded, so it can be mailed or archived as a single file).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
from pathlib import Path

import cv2
import numpy as np

from detector.ingest import inputs
from detector.scan.explain import montage, overlay
from detector.face.faces import KEYPOINT_NAMES
from detector.scan.pipeline import ScanResult
from detector.models.scoring import ModelCard

SCHEMA_VERSION = 1
#: Between a result's warnings in its summary.csv cell (their own text may hold semicolons)
WARNING_SEPARATOR = " | "
SUMMARY_FIELDS = ("input", "name", "verdict", "fake_probability", "threshold", "false_positive_rate_at_score", "faces",
                  "frames_sampled", "duration_s", "resolution", "seconds", "provisional", "error", "warnings",
                  "content_credentials", "credentials_source", "credentials_validation", "credentials_signer",
                  "provenance", "metadata_ai_markers")


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def result_to_dict(result: ScanResult, card: ModelCard, model_source: str = "") -> dict:
    """The result.json document (schema version 1)."""
    tracks = []
    for track, score in zip(result.tracks, result.track_scores):
        tracks.append({
            "track_id": track.track_id,
            "fake_probability": _r(score),
            "counted": track.counted,
            "not_counted_reason": None if track.counted else track.reason,
            "frames": [{
                "frame_index": obs.frame_index,
                "time": obs.time,
                "box": [round(float(v), 1) for v in obs.detection.box],
                "confidence": _r(obs.detection.confidence),
                "landmarks": {name: [round(float(x), 1), round(float(y), 1)]
                              for name, (x, y) in zip(KEYPOINT_NAMES, obs.detection.keypoints)},
                "alignment_angle": round(float(obs.angle), 1),
                "fake_probability": _r(obs.probability),
            } for obs in track.observations],
        })
    return {
        "schema_version": SCHEMA_VERSION,
        "input": result.path,
        "name": result.name,
        "verdict": result.verdict,
        "fake_probability": _r(result.score),
        "threshold": _r(result.threshold),
        # how rare the score is among real footage: the share of the card's reference real videos scoring as high
        "false_positive_rate_at_score": _r(card.false_positive_rate(result.score)),
        "reference_real_videos": len(card.reference_real_scores),
        "provisional": not card.trained,
        "model": {"name": card.name, "version": card.version, "backbone": card.backbone, "trained": card.trained,
                  "threshold_source": card.threshold_source, "source": model_source},
        "video": result.info.to_dict() if result.info else None,
        "frames_sampled": len(result.frames),
        "frames": [{**f, "max_probability": _r(f.get("max_probability"))} for f in result.frames],
        "tracks": tracks,
        "gradcam": [{"track_id": e.track_id, "frame_index": e.frame_index, "time": e.time,
                     "fake_probability": _r(e.probability), "overlay": _cam_name(e.track_id, e.frame_index)}
                    for e in result.explanations],
        "temporal": result.temporal.to_dict() if result.temporal else None,
        "warnings": result.warnings,
        "error": result.error,
        "provenance": result.provenance.to_dict() if result.provenance else None,
        "timing_seconds": result.seconds,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _cam_name(track_id: int, frame_index: int) -> str:
    return f"gradcam/track{track_id}_frame{frame_index:06d}.png"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path}")
    inputs.write_atomic(path, buf.tobytes())


def result_files(doc: dict) -> list[str]:
    """The files besides result.json that a complete result folder holds (paths relative to it): a result whose
    folder lacks one was cut off while being written and is made again, not reused."""
    files = ["report.html"]
    files += [doc[key] for key in ("timeline", "gradcam_montage") if isinstance(doc.get(key), str)]
    files += [cam["overlay"] for cam in doc.get("gradcam") or [] if isinstance(cam, dict)
              and isinstance(cam.get("overlay"), str)]
    return files


def _png_b64(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


def timeline_png(result: ScanResult, threshold: float) -> bytes | None:
    """Per-frame fake probability of every track over time, with the threshold line (matplotlib, PNG bytes)."""
    if not result.tracks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    is_image = result.info is not None and result.info.is_image
    for track, score in zip(result.tracks, result.track_scores):
        xs = [o.frame_index if is_image else o.time for o in track.observations]
        ys = [o.probability for o in track.observations]
        label = f"face {track.track_id} (score {score:.2f})" + ("" if track.counted else ", not counted")
        ax.plot(xs, ys, marker="o", ms=3, ls="-" if track.counted else ":", alpha=1.0 if track.counted else 0.5,
                label=label)
    temporal = result.temporal.windows if result.temporal and not is_image else []
    for k, window in enumerate(temporal):
        ax.hlines(window.probability, window.start_time, window.end_time, colors="black", lw=4, alpha=0.6,
                  label="landmark motion per window (temporal model)" if k == 0 else None)
    ax.axhline(threshold, color="red", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("frame" if is_image else "time (s)")
    ax.set_ylabel("fake probability")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_result(result: ScanResult, out_dir: Path, card: ModelCard, model_source: str = "",
                 settings: dict | None = None, identity: dict | None = None) -> dict:
    """Write everything for one input under ``out_dir/<name>/`` and return the result.json document.

    ``settings`` (model and scan options) and ``identity`` (which input this is: relative path, size, time) are
    stored so a resumed run can tell whether an old result still applies, and to this very file. Every file is
    written atomically, and result.json, which a resumed run looks for, is removed first and written last: a run cut
    off anywhere in between leaves a folder without result.json (or an older one whose files are checked, see
    :func:`result_files`), which the next run scans again.
    """
    folder = out_dir / result.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").unlink(missing_ok=True)
    for stale in folder.rglob(f"{inputs.TEMP_PREFIX}*"):  # left by a run that was killed mid-write
        stale.unlink(missing_ok=True)
    doc = result_to_dict(result, card, model_source)
    if settings is not None:
        doc["scan_settings"] = settings
    if identity is not None:
        doc["input_identity"] = identity
    cams = []
    for exp in result.explanations:
        image = overlay(exp.crop, exp.heatmap)
        _write_png(folder / _cam_name(exp.track_id, exp.frame_index), image)
        cams.append((exp, image))
    if cams:
        sheet = montage([np.concatenate([e.crop, img], axis=1) for e, img in cams], columns=2)
        _write_png(folder / "gradcam" / "montage.png", sheet)
        doc["gradcam_montage"] = "gradcam/montage.png"
    plot = timeline_png(result, result.threshold)
    if plot:
        inputs.write_atomic(folder / "timeline.png", plot)
        doc["timeline"] = "timeline.png"
    inputs.write_atomic(folder / "report.html", render_html(doc, result, plot, cams).encode())
    inputs.write_atomic(folder / "result.json", (json.dumps(doc, indent=2) + "\n").encode())
    return doc


def _verdict_colour(verdict: str) -> str:
    return {"fake": "#c62828", "real": "#2e7d32", "no_face": "#616161"}.get(verdict, "#e65100")


def _headline_note(prov: dict | None) -> str:
    """What validly signed credentials say (AI-made, edited), beside the pixel verdict in the headline."""
    text = (prov or {}).get("headline")
    return f" <span class='headline-credentials'>· {html.escape(text)}</span>" if text else ""


def _frames(count: int) -> str:
    return f"over {count} frame{'' if count == 1 else 's'}"


def _cell(value: object) -> str:
    """A fact as a reader wants it: yes/no rather than Python's True/False, a dash for nothing."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "–" if value is None else str(value)


def render_html(doc: dict, result: ScanResult, plot: bytes | None, cams: list) -> str:
    """A self-contained page (images inlined as data URIs) with verdict, timeline, faces, heatmaps and facts."""
    e = html.escape
    score = doc["fake_probability"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(doc['name'])}: {e(doc['verdict'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
        ".verdict{font-size:2em;font-weight:700}.warn{background:#fff3e0;border-left:4px solid #e65100;"
        "padding:.5em 1em;margin:.5em 0}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;"
        "text-align:left}.faces img{width:112px;height:112px;margin:2px}.cams img{width:224px;margin:4px}"
        "figure{display:inline-block;margin:4px}figcaption{font-size:.8em}.provenance{background:#eef3f8;"
        "border-left:4px solid #1565c0;padding:.5em 1em;margin:1em 0}.provenance summary{cursor:pointer}"
        ".tampered{color:#c62828;font-weight:700}.headline-credentials{font-size:.6em;color:#1565c0}"
        "</style></head><body>",
        f"<h1>{e(doc['name'])}</h1>",
        f"<div class='verdict' style='color:{_verdict_colour(doc['verdict'])}'>{e(doc['verdict'].upper())}"
        f"{_headline_note(doc.get('provenance'))}</div>",
    ]
    medium = "image" if (doc.get("video") or {}).get("is_image") else "video"
    if score is not None:
        parts.append(f"<p>Fake probability <b>{score:.3f}</b> (threshold {doc['threshold']:.3f}; the {medium}'s score "
                     "is its most suspicious counted face track's score; faces seen in too few frames do "
                     "not count).</p>")
        if doc.get("false_positive_rate_at_score") is not None:
            parts.append(f"<p>Of the {doc['reference_real_videos']} real videos the threshold was chosen on (each "
                         "scored by a model that never trained on it), "
                         f"<b>{doc['false_positive_rate_at_score']:.0%}</b> score this high or higher.</p>")
    if doc.get("provenance"):
        parts.append(provenance_html(doc["provenance"]))
    if doc["error"]:
        parts.append(f"<p class='warn'>{e(doc['error'])}</p>")
    for warning in doc["warnings"]:
        parts.append(f"<p class='warn'>{e(warning)}</p>")
    if plot:
        parts.append("<h2>Timeline</h2>")
        parts.append(f"<img alt='per-frame fake probability' src='data:image/png;base64,"
                     f"{base64.b64encode(plot).decode('ascii')}'>")
    if result.tracks:
        parts.append("<h2>Faces</h2>")
        for track, tscore in zip(result.tracks, result.track_scores):
            note = "" if track.counted else f" (not counted in the verdict: {e(track.reason or '')})"
            seen = "in the image" if medium == "image" else _frames(len(track.observations))
            parts.append(f"<h3>Face {track.track_id}: score {tscore:.3f} {seen}{note}</h3><div class='faces'>")
            for obs in track.observations[:16]:
                parts.append(f"<img title='t={obs.time}s p={obs.probability:.3f}' "
                             f"src='data:image/png;base64,{_png_b64(obs.crop)}'>")
            parts.append("</div>")
    if doc.get("temporal"):
        parts.append(temporal_html(doc["temporal"]))
    if cams:
        parts.append("<h2>Where the model looked (Grad-CAM)</h2><div class='cams'>")
        for exp, image in cams:
            parts.append(f"<figure><img src='data:image/png;base64,{_png_b64(image)}'><figcaption>face "
                         f"{exp.track_id}, t={exp.time}s, p={exp.probability:.3f}</figcaption></figure>")
        parts.append("</div>")
    if doc["video"]:
        parts.append("<h2>Input</h2><table>")
        for key, value in doc["video"].items():
            parts.append(f"<tr><th>{e(key)}</th><td>{e(_cell(value))}</td></tr>")
        parts.append(f"<tr><th>frames sampled</th><td>{doc['frames_sampled']}</td></tr></table>")
    model = doc["model"]
    parts.append(f"<h2>Model</h2><p>{e(model['name'])} v{model['version']} ({e(model['backbone'])}), "
                 f"{'trained' if model['trained'] else '<b>untrained: verdicts are provisional</b>'}; "
                 f"threshold from {e(model['threshold_source'])}.</p>")
    parts.append(f"<p><small>Generated {e(doc['created'])}.</small></p></body></html>")
    return "\n".join(parts)


def temporal_html(temporal: dict) -> str:
    """The temporal evidence: what it read, its video score and every window's, beside (not inside) the verdict."""
    e = html.escape
    parts = ["<h2>Motion over time</h2>",
             f"<p>How each face's 68 landmarks move over runs of consecutive frames, scored by {e(temporal['model'])}."
             " Shown beside the verdict: on the validation of record it did not add to the frame evidence, so it "
             "does not change the fake probability.</p>"]
    if temporal.get("fake_probability") is None:
        parts.append(f"<p>No temporal score: {e(temporal.get('reason') or 'no window was read')}.</p>")
        return "\n".join(parts)
    parts.append(f"<p>Temporal score <b>{temporal['fake_probability']:.3f}</b> (each face's mean over its windows, "
                 "the most suspicious face's).</p><table><tr><th>face</th><th>frames</th><th>time (s)</th>"
                 "<th>fake probability</th></tr>")
    for w in temporal["windows"]:
        parts.append(f"<tr><td>{w['track_id']}</td><td>{w['start_frame']}-{w['start_frame'] + w['frames'] - 1}</td>"
                     f"<td>{w['start_time']:.2f}-{w['end_time']:.2f}</td><td>{w['fake_probability']:.3f}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


CREDENTIALS_NOTE = ("Content credentials are a signed statement by whoever made or edited the file; they are shown "
                    "beside the verdict and do not change the fake probability. A valid signature shows who signed "
                    "the file and that it has not changed since; it cannot show that what the file depicts is true, "
                    "and a file without credentials proves nothing.")


def _action_text(action: dict) -> str:
    """'edited (composite with AI), software X, at T' for one recorded action."""
    text = f"{action['words']} ({action['source']})" if action.get("source") else action["words"]
    if action.get("software"):
        text += f", software {action['software']}"
    if action.get("when"):
        text += f", at {action['when']}"
    return text


def provenance_html(prov: dict) -> str:
    """The content-credentials box: the one-line statement, what it means, and the details in a table."""
    e = html.escape
    status = prov.get("status")
    alarm = " class='tampered'" if prov.get("validation") in ("tampered", "invalid") else ""
    parts = ["<section class='provenance'><h2>Content credentials</h2>",
             f"<p{alarm}><b>{e(prov.get('summary') or '')}</b></p>"]
    if prov.get("metadata_summary"):
        parts.append(f"<p>{e(prov['metadata_summary'])}</p>")
    parts.append(f"<p><small>{e(CREDENTIALS_NOTE)}</small></p>")
    rows: list[tuple[str, str]] = []
    if status == "present":
        generator = " ".join(p for p in (prov.get("claim_generator"), prov.get("claim_generator_version")) if p)
        rows += [("made with (claim generator)", generator), ("signer", prov.get("signer") or ""),
                 ("signing certificate", prov.get("signer_subject") or ""),
                 ("certificate issued by", prov.get("signer_issuer") or ""),
                 ("signer verified", "yes (on the trusted-signer list)" if prov.get("signer_verified")
                  else "no (not on a trusted-signer list)"),
                 ("signing time", prov.get("signing_time") or "not stated (no trusted timestamp)"),
                 ("validation", prov.get("validation_words") or "")]
        for code in prov.get("validation_codes") or []:
            rows.append(("validation code", f"{code['code']}: {code['words']}"))
        for action in prov.get("actions") or []:
            rows.append(("action", _action_text(action)))
        for ing in prov.get("ingredients") or []:
            facts = [ing.get("title") or "untitled", f"({ing.get('relationship') or 'ingredient'})",
                     "with its own credentials" if ing.get("has_credentials") else "without credentials"]
            if ing.get("source"):
                facts.append(f"— {ing['source']}")
            if ing.get("problems"):
                facts.append(f"— problems: {'; '.join(ing['problems'])}")
            rows.append(("ingredient", " ".join(facts)))
    for marker in prov.get("metadata") or []:
        rows.append((f"metadata: {marker['where']} {marker['field']}", f"{marker['value']} — {marker['meaning']}"))
    for note in prov.get("notes") or []:
        rows.append(("note", note))
    if rows:
        parts.append("<details><summary>Details</summary><table>")
        parts += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows]
        parts.append("</table></details>")
    parts.append("</section>")
    return "\n".join(parts)


def _provenance_columns(prov: dict | None) -> dict:
    """The summary.csv columns of a result's provenance block (all empty for results made before it existed)."""
    if not prov:
        return {}
    markers = [f"{m['meaning']} ({m['where']} {m['field']})" for m in prov.get("metadata") or [] if m.get("ai")]
    return {"content_credentials": prov.get("status"), "credentials_source": prov.get("source"),
            "credentials_validation": prov.get("validation"), "credentials_signer": prov.get("signer"),
            "provenance": prov.get("summary"), "metadata_ai_markers": "; ".join(markers) or None}


def summary_row(doc: dict) -> dict:
    info = doc.get("video") or {}
    return {
        "input": doc["input"], "name": doc["name"], "verdict": doc["verdict"],
        "fake_probability": doc["fake_probability"], "threshold": doc["threshold"],
        # absent from the result.json of a scan made before the card kept its reference reals (a resumed run)
        "false_positive_rate_at_score": doc.get("false_positive_rate_at_score"),
        "faces": len(doc["tracks"]), "frames_sampled": doc["frames_sampled"],
        "duration_s": info.get("duration"),
        "resolution": f"{info['width']}x{info['height']}" if info else None,
        "seconds": (doc.get("timing_seconds") or {}).get("total"),
        "provisional": doc["provisional"], "error": doc["error"],
        # what weakens a verdict (a truncated video, a palette image), so a folder's summary shows it too
        "warnings": WARNING_SEPARATOR.join(doc.get("warnings") or []) or None,
        **_provenance_columns(doc.get("provenance")),
    }


def write_summary(rows: list[dict], out_dir: Path) -> Path:
    """``summary.csv`` over all inputs of a run (written atomically: a crash leaves the previous one whole)."""
    path = out_dir / "summary.csv"
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in SUMMARY_FIELDS})
    inputs.write_atomic(path, text.getvalue().encode())
    return path


def _credentials_cell(row: dict) -> str:
    """Content credentials in a few words for the terminal table: none, or the source and the check's outcome."""
    status = row.get("content_credentials")
    if status == "absent" and row.get("metadata_ai_markers"):
        return "none; metadata says AI"
    if status != "present":
        return {"absent": "none", None: ""}.get(status, str(status))
    return f"{row.get('credentials_source') or 'present'} ({row.get('credentials_validation')})"


def _note(row: dict, width: int = 70) -> str:
    """The terminal table's note: the error, or else what weakens the verdict (the first warning, and how many more)."""
    if row.get("error"):
        return row["error"][:width]
    warnings = [w for w in (row.get("warnings") or "").split(WARNING_SEPARATOR) if w]
    if not warnings:
        return ""
    more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
    text = f"warning: {warnings[0]}"
    return text[:width - len(more)] + more


def format_table(rows: list[dict]) -> str:
    """A plain-text table for the terminal."""
    # reals_as_high: the share of the card's reference reals scoring at least as high (false_positive_rate_at_score)
    headers = ("name", "verdict", "fake_prob", "reals_as_high", "faces", "credentials", "note")
    lines = [[r["name"], r["verdict"], "" if r["fake_probability"] is None else f"{r['fake_probability']:.3f}",
              "" if r.get("false_positive_rate_at_score") is None else f"{r['false_positive_rate_at_score']:.0%}",
              str(r["faces"]), _credentials_cell(r), _note(r)] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)
