"""Checks for detector.scan.report on hand-made scan results: result.json schema, PNGs, a self-contained report.html,
summary.csv and the terminal table."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from detector.face.faces import KEYPOINT_NAMES, Detection, FaceTrack, Observation
from detector.models.scoring import ModelCard
from detector.scan.pipeline import Explanation, ScanResult
from detector.scan.report import (SCHEMA_VERSION, SUMMARY_FIELDS, WARNING_SEPARATOR, format_table, result_to_dict,
                             summary_row, write_result, write_summary)
from detector.ingest.video import VideoInfo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _observation(frame: int, probability: float, x: float) -> Observation:
    """A face at horizontal offset ``x`` with a random crop (distinct per frame, so inlined PNGs differ)."""
    rng = np.random.default_rng(frame)
    det = Detection(box=np.array([x, 40.0, x + 100.0, 160.0], np.float32), confidence=0.987654,
                    keypoints=np.array([[x + 30, 80], [x + 70, 80], [x + 50, 100], [x + 35, 130], [x + 65, 130]],
                                       np.float32))
    return Observation(frame_index=frame, time=frame / 25, detection=det,
                       crop=rng.integers(0, 256, (224, 224, 3), np.uint8), crop_keypoints=np.zeros((5, 2)),
                       probability=probability)


def make_result(name: str = "clip.mp4") -> ScanResult:
    """A two-face video result as the scanner would produce it, with two Grad-CAM explanations."""
    info = VideoInfo(path=f"/videos/{name}", width=640, height=360, codec="h264", container="mov,mp4", fps=25.0,
                     duration=4.0, frame_count=100, rotation=0, is_image=False, has_audio=True)
    first = FaceTrack(0, [_observation(f, p, 50.0) for f, p in ((12, 0.2), (37, 0.3), (62, 0.25))])
    second = FaceTrack(1, [_observation(f, p, 400.0) for f, p in ((12, 0.8), (37, 0.9))])
    heat = np.tile(np.linspace(0, 1, 224, dtype=np.float32), (224, 1))
    explanations = [Explanation(track_id=1, frame_index=o.frame_index, time=o.time, probability=o.probability,
                                crop=o.crop, heatmap=heat) for o in second.observations]
    return ScanResult(
        path=info.path, name=name, verdict="fake", score=0.85, threshold=0.5, info=info,
        frames=[{"index": 12, "time": 0.48, "faces": 2, "max_probability": 0.8},
                {"index": 37, "time": 1.48, "faces": 2, "max_probability": 0.9},
                {"index": 62, "time": 2.48, "faces": 1, "max_probability": 0.25},
                {"index": 87, "time": 3.48, "faces": 0, "max_probability": None}],
        tracks=[first, second], track_scores=[0.25, 0.85], explanations=explanations,
        warnings=["the model is untrained: <provisional> & carries no information"],
        seconds={"decode": 0.1, "faces": 1.0, "model": 0.5, "gradcam": 0.7, "total": 2.3})


def error_result(name: str = "broken.mp4") -> ScanResult:
    """What the scanner returns for an unreadable file: no video facts, no tracks, just the message."""
    return ScanResult(path=f"/videos/{name}", name=name, verdict="error",
                      error=f"/videos/{name}: not a readable video or image (Invalid data found)")


@pytest.fixture()
def written(tmp_path: Path) -> tuple[dict, Path]:
    """The two-face result written to disk: the returned document and its folder."""
    doc = write_result(make_result(), tmp_path, ModelCard(), "untrained (in memory)")
    return doc, tmp_path / "clip.mp4"


def test_result_json_schema(written: tuple[dict, Path]) -> None:
    doc, folder = written
    on_disk = json.loads((folder / "result.json").read_text())
    assert on_disk == doc
    assert {"schema_version", "input", "name", "verdict", "fake_probability", "threshold", "provisional", "model",
            "video", "frames_sampled", "frames", "tracks", "gradcam", "warnings", "error", "timing_seconds",
            "created", "gradcam_montage", "timeline"} <= set(doc)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert (doc["verdict"], doc["fake_probability"], doc["threshold"]) == ("fake", 0.85, 0.5)
    assert doc["provisional"] is True and doc["model"]["trained"] is False
    assert doc["model"]["source"] == "untrained (in memory)"
    assert doc["video"]["width"] == 640 and doc["video"]["has_audio"] is True
    assert doc["frames_sampled"] == 4 and doc["frames"][-1]["max_probability"] is None
    assert [t["fake_probability"] for t in doc["tracks"]] == [0.25, 0.85]
    frame = doc["tracks"][1]["frames"][0]
    assert frame["box"] == [400.0, 40.0, 500.0, 160.0]
    assert frame["confidence"] == 0.9877
    assert list(frame["landmarks"]) == list(KEYPOINT_NAMES) and frame["landmarks"]["nose"] == [450.0, 100.0]
    assert [g["frame_index"] for g in doc["gradcam"]] == [12, 37]
    assert doc["error"] is None
    # the untrained card has no reference reals: no rate, rather than a made-up one
    assert doc["false_positive_rate_at_score"] is None and doc["reference_real_videos"] == 0


def test_score_is_placed_among_the_cards_reference_reals(tmp_path: Path) -> None:
    """With reference reals in the card, result.json, the summary row and the page say how many of them score as
    high as the video (0.85 here: 2 of 8)."""
    card = ModelCard(trained=True, reference_real_scores=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.85, 0.9])
    doc = write_result(make_result(), tmp_path, card, "a card with reference reals")
    assert doc["false_positive_rate_at_score"] == 0.25 and doc["reference_real_videos"] == 8
    assert summary_row(doc)["false_positive_rate_at_score"] == 0.25
    page = (tmp_path / "clip.mp4" / "report.html").read_text()
    assert "Of the 8 real videos the threshold was chosen on" in page and "<b>25%</b>" in page


def test_pngs_are_written(written: tuple[dict, Path]) -> None:
    doc, folder = written
    for item in doc["gradcam"]:
        assert (folder / item["overlay"]).read_bytes().startswith(PNG_MAGIC)
    assert (folder / doc["gradcam_montage"]).read_bytes().startswith(PNG_MAGIC)
    assert (folder / doc["timeline"]).read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in (folder / "gradcam").iterdir()) == [
        "montage.png", "track1_frame000012.png", "track1_frame000037.png"]


def test_report_html_is_self_contained(written: tuple[dict, Path]) -> None:
    """The page must open offline and survive being mailed alone: every image is a data URI, nothing is fetched."""
    _, folder = written
    page = (folder / "report.html").read_text()
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.IGNORECASE)
    assert references, "the report shows images"
    assert all(ref.startswith("data:") for ref in references), [r[:40] for r in references if
                                                                   not r.startswith("data:")]
    assert not re.search(r"url\(|@import|<link|<script", page, flags=re.IGNORECASE)
    # 1 timeline + 5 face crops + 2 Grad-CAM overlays
    assert page.count("data:image/png;base64,") == 8
    assert "FAKE" in page and "0.850" in page
    assert "&lt;provisional&gt; &amp;" in page  # text from the input is escaped, not injected as markup
    assert "untrained" in page


def test_error_result_still_gets_json_and_html(tmp_path: Path) -> None:
    doc = write_result(error_result(), tmp_path, ModelCard())
    folder = tmp_path / "broken.mp4"
    assert json.loads((folder / "result.json").read_text())["verdict"] == "error"
    assert doc["video"] is None and doc["tracks"] == [] and doc["fake_probability"] is None
    assert "timeline" not in doc and not (folder / "timeline.png").exists()
    assert "Invalid data found" in (folder / "report.html").read_text()


def test_no_face_result(tmp_path: Path) -> None:
    result = make_result("empty_room.mp4")
    result.tracks, result.track_scores, result.explanations, result.score = [], [], [], None
    result.verdict = "no_face"
    doc = write_result(result, tmp_path, ModelCard(trained=True))
    assert doc["verdict"] == "no_face" and doc["provisional"] is False and doc["gradcam"] == []
    assert not (tmp_path / "empty_room.mp4" / "gradcam").exists()


def test_summary_csv_has_one_row_per_input(tmp_path: Path) -> None:
    card = ModelCard()
    rows = [summary_row(result_to_dict(make_result(), card)), summary_row(result_to_dict(error_result(), card))]
    path = write_summary(rows, tmp_path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == SUMMARY_FIELDS
        read = list(reader)
    assert [r["verdict"] for r in read] == ["fake", "error"]
    good, bad = read
    assert (good["name"], good["faces"], good["frames_sampled"], good["resolution"]) == ("clip.mp4", "2", "4",
                                                                                          "640x360")
    assert good["fake_probability"] == "0.85" and good["provisional"] == "True" and good["error"] == ""
    assert bad["fake_probability"] == "" and bad["resolution"] == "" and "Invalid data" in bad["error"]
    assert good["warnings"] == "the model is untrained: <provisional> & carries no information"  # what weakens it
    assert bad["warnings"] == ""


def test_table_lists_every_input() -> None:
    card = ModelCard(reference_real_scores=[0.1, 0.5, 0.9, 0.95])
    long_error = error_result("x" * 200 + ".mp4")
    rows = [summary_row(result_to_dict(make_result(), card)), summary_row(result_to_dict(long_error, card))]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["name", "verdict", "fake_prob", "reals_as_high", "faces", "credentials", "note"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split()[:5] == ["clip.mp4", "fake", "0.850", "50%", "2"]  # 0.9 and 0.95 of the four reals
    assert lines[3].split()[1:3] == ["error", "0"]  # no probability, no rate for a failed input
    assert len(lines[3][lines[0].index("note"):].strip()) == 70  # long messages are cut
    assert len(format_table([]).splitlines()) == 2


def test_table_note_shows_what_weakens_a_verdict() -> None:
    """A judged input's note is its first warning (whose own text may hold a semicolon) and how many more there
    are, cut to the column; an error still comes first."""
    result = make_result()
    result.warnings = ["truncated or damaged video: only 13 of 32 sampled frames decoded (41 %; the stream ends near "
                       "3.9 s of 10.0 s); the verdict judges only the part that decodes", "palette-quantized"]
    row = summary_row(result_to_dict(result, ModelCard()))
    assert row["warnings"].split(WARNING_SEPARATOR) == result.warnings
    lines = format_table([row, summary_row(result_to_dict(error_result(), ModelCard()))]).splitlines()
    note = lines[2][lines[0].index("note"):].strip()
    assert note.startswith("warning: truncated or damaged video: only 13 of 32") and note.endswith("(+1 more)")
    assert len(note) <= 70
    assert "Invalid data" in lines[3] and "warning" not in lines[3]


def _signed(source: str, kind: str, validation: str = "valid", action: str = "c2pa.created"):
    from detector.origin.provenance import CredentialAction, Provenance, _describe

    prov = Provenance(status="present", manifest_present=True, signer="Test Signer", validation=validation,
                      source=source, source_kind=kind,
                      actions=[CredentialAction(action=action, words=action.removeprefix("c2pa."))])
    _describe(prov)
    return prov


@pytest.mark.parametrize("source, kind, validation, action, shown", [
    ("generated by AI", "ai", "valid", "c2pa.created", "generated by AI"),
    ("composite with AI", "ai", "trusted", "c2pa.edited", "composite with AI"),
    ("captured by a camera", "capture", "valid", "c2pa.edited", "edited"),
    ("captured by a camera", "capture", "valid", "c2pa.created", None),
    ("generated by AI", "ai", "tampered", "c2pa.created", None),  # a claim that no longer holds is not a headline
])
def test_the_headline_says_what_signed_credentials_state(tmp_path: Path, source: str, kind: str, validation: str,
                                                         action: str, shown: str | None) -> None:
    """A large green REAL right above 'generated by AI (signature valid)' misleads: the headline says it too."""
    result = make_result()
    result.verdict, result.provenance = "real", _signed(source, kind, validation, action)
    write_result(result, tmp_path, ModelCard())
    page = (tmp_path / "clip.mp4" / "report.html").read_text()
    headline = page[page.index("<div class='verdict'"):]
    headline = headline[:headline.index("</div>")]
    assert "REAL" in headline
    if shown is None:
        assert "credentials" not in headline and result.provenance.headline is None
    else:
        assert f"signed content credentials say: {shown}" in headline
        assert result.provenance.headline == f"signed content credentials say: {shown}"


def test_a_still_is_reported_as_an_image_with_plain_words(tmp_path: Path) -> None:
    result = make_result("photo.jpg")
    result.info = VideoInfo(path="/photos/photo.jpg", width=640, height=360, codec="mjpeg", container="image2",
                            fps=0, duration=0, frame_count=1, rotation=0, is_image=True, has_audio=False)
    result.tracks = result.tracks[1:]
    result.tracks[0].observations = result.tracks[0].observations[:1]
    result.track_scores = result.track_scores[1:]
    result.frames = result.frames[:1]
    write_result(result, tmp_path, ModelCard())
    page = (tmp_path / "photo.jpg" / "report.html").read_text()
    assert "the video" not in page and "1 frames" not in page and "the image's score" in page
    assert "README" not in page
    cells = re.findall(r"<td>([^<]*)</td>", page)
    assert "False" not in cells and "True" not in cells and "no" in cells  # has_audio, rotation facts
