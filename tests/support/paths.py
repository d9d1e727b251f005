"""Where the checkout and the shared read-only material are."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
