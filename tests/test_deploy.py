"""The deploy/ files point TF Serving at the folder layout that training.export writes."""

from __future__ import annotations

import re
from pathlib import Path

from detector import config

ROOT = Path(__file__).resolve().parents[1]


def test_models_config_names_the_exported_model() -> None:
    text = (ROOT / "deploy" / "models.config").read_text()
    assert re.search(rf'name:\s*"{config.MODEL_NAME}"', text)
    assert re.search(rf'base_path:\s*"/models/{config.MODEL_NAME}"', text)


def test_compose_mounts_saved_model_and_config() -> None:
    text = (ROOT / "deploy" / "docker-compose.yml").read_text()
    assert "tensorflow/serving" in text
    assert "../saved_model:/models" in text and "--model_config_file=/config/models.config" in text
    assert "8501:8501" in text
    assert config.SAVED_MODEL_ROOT == ROOT / "saved_model"
