"""The model card: a round trip through card.json, cards from newer versions still loading, an unreadable card as a
one-line error, and paths recorded relative to the project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector import config
from detector.errors import ModelError
from detector.scoring import ModelCard


def test_model_card_round_trip(tmp_path: Path) -> None:
    card = ModelCard(version=7, trained=True, threshold=0.61, threshold_source="val EER",
                     training={"epochs": 3, "datasets": ["lfw"]}, metrics={"auc": 0.9})
    card.save(tmp_path / "card.json")
    assert ModelCard.load(tmp_path / "card.json") == card
    assert ModelCard.from_dict({**card.to_dict(), "added_later": 1}) == card  # newer cards still load
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable model card"):
        ModelCard.load(tmp_path / "bad.json")


def test_card_records_paths_inside_the_project_relative_to_it() -> None:
    from training.export import make_card

    summary = {"backbone": "mobilenetv2", "threshold": 0.3, "threshold_source": "EER",
               "data": [str(config.PROJECT_ROOT / "data_cache" / "videos"), "/elsewhere/lfw"]}
    evaluation = {"model": str(config.DEFAULT_MODEL_DIR / "model.keras"), "manifest": "../shared/labels.csv",
                  "sections": {"video": {"items": 17}}}
    card = make_card(summary, evaluation, version=1)
    assert card.training["data"] == ["data_cache/videos", "/elsewhere/lfw"]
    assert card.metrics == {**evaluation, "model": "saved_model/deepfake/model.keras"}
    assert str(config.PROJECT_ROOT) not in json.dumps(card.to_dict())


def test_project_relative_keeps_other_paths_and_values() -> None:
    assert config.project_relative(config.DEFAULT_MODEL_DIR / "model.keras") == "saved_model/deepfake/model.keras"
    assert config.project_relative(Path("runs/x")) == "runs/x" and config.project_relative("/elsewhere") == "/elsewhere"
    assert config.project_relative(["text", 3, None, str(config.PROJECT_ROOT)]) == ["text", 3, None, "."]
