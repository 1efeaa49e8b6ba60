"""Checks for detector.scan.aggregate: each pooling rule against a hand computation, the video score, the verdict, and
the scored tracks evaluation and training rebuild from scans and prepared crops."""

from __future__ import annotations

import pytest

from detector.scan.aggregate import RULES, ScoredTracks, pool, tracks_from_rows, verdict, video_score

PROBS = [0.1, 0.2, 0.9, 0.3, 0.5, 0.8, 0.4, 0.6]


@pytest.mark.parametrize("rule, expected", [
    ("mean", 3.8 / 8),
    ("median", 0.45),
    ("max", 0.9),
    ("top_quartile", (0.9 + 0.8) / 2),  # 8 frames: the top 2
])
def test_pool_rules(rule: str, expected: float) -> None:
    assert pool(PROBS, rule) == pytest.approx(expected)


def test_every_rule_is_tested_and_handles_one_frame() -> None:
    assert set(RULES) == {"mean", "median", "max", "top_quartile"}
    for rule in RULES:
        assert pool([0.7], rule) == pytest.approx(0.7)


def test_top_quartile_rounds_up() -> None:
    assert pool([0.1, 0.2, 0.3, 0.4, 0.5], "top_quartile") == pytest.approx((0.5 + 0.4) / 2)  # ceil(5/4) = 2


def test_pool_refuses_empty_input_and_unknown_rules() -> None:
    with pytest.raises(ValueError, match="empty"):
        pool([], "mean")
    with pytest.raises(ValueError, match="unknown aggregation rule"):
        pool([0.5], "mode")


def test_video_score_is_the_most_suspicious_track() -> None:
    assert video_score([0.1, 0.7, 0.3]) == 0.7
    assert video_score([]) is None


@pytest.mark.parametrize("score, expected", [(None, "no_face"), (0.49, "real"), (0.5, "fake"), (0.51, "fake"),
                                             (0.0, "real"), (1.0, "fake")])
def test_verdict(score: float | None, expected: str) -> None:
    assert verdict(score, 0.5) == expected


def test_scored_tracks_follow_the_scan_rule() -> None:
    """The item's score is its most suspicious counted track's; a track that does not count never decides, however
    suspicious; the decisive frames are that track's."""
    tracks = ScoredTracks([[0.2, 0.4], [0.9, 0.95], [0.5, 0.7, 0.6]], [True, False, True])
    assert tracks.score() == pytest.approx(0.6)
    assert tracks.decisive_frames() == [0.5, 0.7, 0.6]
    assert tracks.score("max") == pytest.approx(0.7)
    assert tracks.score("median") == pytest.approx(0.6)
    assert ScoredTracks().score() is None and ScoredTracks().decisive_frames() == []


def test_tracks_from_rows_group_crops_by_item_and_track_in_order() -> None:
    rows = [{"item": "b", "track": 1, "counted": True}, {"item": "a", "track": 0, "counted": True},
            {"item": "b", "track": 2, "counted": False}, {"item": "b", "track": 1, "counted": True},
            {"item": "a", "track": 0}]
    tracks = tracks_from_rows(rows, [0.3, 0.1, 0.99, 0.5, 0.2])
    assert list(tracks) == ["b", "a"]
    assert tracks["b"].probabilities == [[0.3, 0.5], [0.99]] and tracks["b"].counted == [True, False]
    assert tracks["b"].score() == pytest.approx(0.4)
    assert tracks["a"].probabilities == [[0.1, 0.2]] and tracks["a"].counted == [True]
