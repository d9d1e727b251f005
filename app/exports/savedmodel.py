"""Export a trained model as a TensorFlow Serving SavedModel: ``<out>/<name>/<version>/``.

Each export gets the next integer version. It is written to a hidden temporary directory first and
renamed into place, so TensorFlow Serving (which ignores non-numeric directories) never loads a
half-written version. ``assets.extra/fromzero.json`` records what the export is; other small files
(e.g. the vocabulary) and TF Serving's warm-up requests are written beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.saved_model import save_context

from app.serving.warmup import write_warmup_requests

METADATA_FILE = "fromzero.json"


@dataclass(frozen=True)
class Endpoint:
    """One SavedModel signature: a function of named tensors returning a dict of named tensors."""

    name: str
    fn: Callable[..., dict]
    input_signature: list[tf.TensorSpec]


@dataclass(frozen=True)
class ExportSpec:
    """Everything a task exports: signatures, extra objects they use, metadata and side files."""

    endpoints: list[Endpoint]
    tracked: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    extra_files: dict[str, str] = field(default_factory=dict)
    # Example inputs per signature, replayed by TF Serving after loading (assets.extra/tf_serving_warmup_requests).
    warmup_examples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def version_folders(model_dir: Path) -> dict[int, Path]:
    """The complete versions under ``model_dir`` and their folders, oldest first; a zero-padded
    folder name is its number, as TF Serving reads it (``00000123`` is version 123)."""
    if not model_dir.is_dir():
        return {}
    found = {}
    for entry in sorted(model_dir.iterdir()):
        if entry.name.isdigit() and entry.is_dir():
            found.setdefault(int(entry.name), entry)
    return dict(sorted(found.items()))


def versions(model_dir: Path) -> list[int]:
    """The complete versions under ``model_dir``, oldest first."""
    return list(version_folders(model_dir))


def export_model(model: keras.Model, spec: ExportSpec, out_dir: str | Path, name: str) -> Path:
    """Write ``model`` with ``spec``'s signatures as the next version of ``out_dir/name``."""
    model_dir = Path(out_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)

    archive = keras.export.ExportArchive()
    archive.track(model)
    for obj in spec.tracked:
        archive.track(obj)
    for endpoint in spec.endpoints:
        archive.add_endpoint(endpoint.name, endpoint.fn, input_signature=endpoint.input_signature)
    _write_out_tracing_once(archive, staging)

    extra = staging / "assets.extra"
    extra.mkdir(exist_ok=True)
    metadata = {"name": name, "signatures": [endpoint.name for endpoint in spec.endpoints], **spec.metadata}
    (extra / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    for filename, text in spec.extra_files.items():
        (extra / filename).write_text(text, encoding="utf-8")
    if spec.warmup_examples:
        write_warmup_requests(staging, name, spec.warmup_examples)
    return _publish(staging, model_dir)


@contextlib.contextmanager
def traced_as_saving():
    """Trace ``tf.function``s here as ``tf.saved_model.save`` (default options) will: a function keys its
    traces on the variable policy of the save context it runs in, so whatever was traced outside one is
    traced again while saving. Exports trace inside this instead, and saving finds the traces made."""
    with save_context.save_context(tf.saved_model.SaveOptions()):
        yield


def _write_out_tracing_once(archive, path: Path):
    """``archive.write_out(path)`` with each endpoint traced once, not twice: Keras traces the endpoints
    to find the variables they use, then saving traces them again; done `traced_as_saving`, the second
    trace is a cache hit, which roughly halves a GPT export's time. (Keras 3.15's private
    ``_filter_and_track_resources``; tests/exports/test_savedmodel.py counts the traces.)"""
    find_variables = archive._filter_and_track_resources

    def find_variables_as_saving_does():
        with traced_as_saving():
            find_variables()

    archive._filter_and_track_resources = find_variables_as_saving_does
    archive.write_out(str(path), verbose=False)


def _publish(staging: Path, model_dir: Path) -> Path:
    """Rename the finished export to the next free version number (atomic on one file system)."""
    while True:
        target = model_dir / str((versions(model_dir) or [0])[-1] + 1)
        try:
            os.rename(staging, target)
            return target
        except OSError:
            if not target.exists():
                raise


def resolve_version(model_dir: str | Path, version: int | None = None) -> Path:
    """The directory of ``version`` (default: the newest) under ``model_dir``; FileNotFoundError if none."""
    model_dir = Path(model_dir)
    if (model_dir / "saved_model.pb").is_file() and version is None:
        return model_dir
    available = version_folders(model_dir)
    if not available:
        raise FileNotFoundError(f"no exported versions under {model_dir}")
    chosen = list(available)[-1] if version is None else version
    if chosen not in available:
        raise FileNotFoundError(f"version {chosen} not found under {model_dir} (available: {list(available)})")
    return available[chosen]


def read_metadata(export_dir: str | Path) -> dict:
    return json.loads((Path(export_dir) / "assets.extra" / METADATA_FILE).read_text())


def export_one_signature(source_dir: str | Path, signature: str, out_dir: str | Path, name: str) -> Path:
    """Re-export one signature of an export, alone, as ``serving_default`` of the next version of
    ``out_dir/name``. The new SavedModel holds only that signature's graph and the variables, so ops
    the other signatures need (e.g. TF Text's, in the BERT export's raw-string signature) are not in
    it, and TF Serving builds without them can load it."""
    import tensorflow_text  # noqa: F401  (the source export may need TF Text ops to load)

    from app.serving.warmup import read_warmup_requests

    source_dir = Path(source_dir)
    loaded = tf.saved_model.load(str(source_dir))
    if signature not in loaded.signatures:
        raise KeyError(f"{source_dir} has no signature {signature!r} (it has {sorted(loaded.signatures)})")
    function = loaded.signatures[signature]
    holder = tf.Module()
    holder.variables_used = list(loaded.variables)  # tracked, so the function's captured weights are saved

    model_dir = Path(out_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    tf.saved_model.save(holder, str(staging), signatures={"serving_default": function})

    (staging / "assets.extra").mkdir(exist_ok=True)
    metadata = {**read_metadata(source_dir), "name": name, "signatures": ["serving_default"]}
    metadata["exported_from"] = {"export": str(source_dir), "signature": signature}
    (staging / "assets.extra" / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    examples = [request for request in read_warmup_requests(source_dir) if request.model_spec.signature_name == signature]
    if examples:
        inputs = {key: tf.make_ndarray(value) for key, value in examples[0].inputs.items()}
        write_warmup_requests(staging, name, {"serving_default": inputs})
    return _publish(staging, model_dir)
