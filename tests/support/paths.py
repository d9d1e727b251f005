"""Where the checkout and the shared read-only material are: the app's own answers, so a test looks
exactly where the code does."""

from app.common.paths import MINILM_CHECKPOINT as MINILM
from data_pipelines.sources import REPO_ROOT, SHARED_DATA_DIR as SHARED_DATA

__all__ = ["MINILM", "REPO_ROOT", "SHARED_DATA"]
