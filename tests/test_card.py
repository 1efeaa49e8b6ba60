"""The model card: a round trip through card.json, cards from newer versions still loading, an unreadable card as a
one-line error, paths recorded relative to the project, and the reference reals a score is placed among."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector import config
from detector.errors import ModelError
from detector.models.scoring import ModelCard


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


def test_false_positive_rate_is_the_share_of_reference_reals_scoring_as_high() -> None:
    card = ModelCard(reference_real_scores=[0.1, 0.2, 0.4, 0.4, 0.9])
    assert card.false_positive_rate(0.4) == pytest.approx(0.6)  # ties count, as the threshold counts them
    assert card.false_positive_rate(0.95) == 0.0 and card.false_positive_rate(0.0) == 1.0
    assert card.false_positive_rate(None) is None and ModelCard().false_positive_rate(0.5) is None


def test_export_keeps_the_threshold_reals_once_as_the_reference() -> None:
    """The out-of-fold reals training.lomo_report found the threshold on become the card's reference scores, and
    the threshold at 5 % false positives of those reference scores is the card's threshold."""
    import numpy as np

    from training.export import make_card
    from training.lomo_report import lomo_figures, threshold_at_fpr

    rng = np.random.default_rng(0)
    scores = {f"r{i}": {"label": 0, "score": float(s), "crf35": 0.5, "half_res": 0.5}
              for i, s in enumerate(rng.uniform(0, 1, 40))}
    scores.update({f"f{i}": {"label": 1, "score": float(s), "crf35": 0.5, "half_res": 0.5}
                   for i, s in enumerate(rng.uniform(0.3, 1, 10))})
    fig = lomo_figures({"folds": [{"method": "m", "scores": scores}]}, n_bootstrap=0)
    card = make_card({"backbone": "mobilenetv2", "threshold": fig["threshold_at_5pct_fpr"],
                      "threshold_source": "5% FP", "leave_one_method_out": fig}, None, version=1)
    assert len(card.reference_real_scores) == 40 and card.reference_real_scores == sorted(card.reference_real_scores)
    assert "out_of_fold_real_scores" not in card.training["leave_one_method_out"]  # kept once, at the top
    assert round(threshold_at_fpr(np.array(card.reference_real_scores), 0.05), 4) == card.threshold
    # above the threshold (both rounded to 4 decimals, so the real it sits on ties with it) only 5 % of the reals
    assert card.false_positive_rate(card.threshold + 1e-4) <= 0.05 < card.false_positive_rate(card.threshold - 0.01)
