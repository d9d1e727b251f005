"""Every default folder of the app, in one place. All are relative to the working directory, as a
user's own flags are; the shared read-only material is found beside the checkout."""

from pathlib import Path

from data_pipelines.sources import REPO_ROOT

SAVED_MODELS = Path("saved_models")  # TF Serving exports: <name>/<version>/
RUNS = Path("runs")  # TensorBoard logs, histories, checkpoints: <task>/<timestamp>/
HUB = SAVED_MODELS / "hub"  # TF-Hub handles: <name>/{preprocessor,encoder}
MINILM_HUB = HUB / "minilm_l6"  # the shared MiniLM in TF-Hub format (app.export_hub, first use of app.train bert)
FROM_ZERO_HUB = HUB / "bert_tiny_from_zero"  # what app.train mlm pretrains by default
VOCABULARY = SAVED_MODELS / "pretrain" / "vocab"  # app.pretrain vocab
TEACHER = SAVED_MODELS / "bert_sst2"  # app.train bert's export, the default teacher of app.distill
TEACHER_LOGITS = RUNS / "distill" / "teacher_logits"
EVALUATIONS = RUNS / "evaluate"
MINILM_CHECKPOINT = REPO_ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"


def hub_handles(name: str, base: Path | str = SAVED_MODELS) -> Path:
    """The folder of a TF-Hub handle pair written under an export base."""
    return Path(base) / "hub" / name
