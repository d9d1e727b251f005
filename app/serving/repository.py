"""Find, load and hot-swap the models under ``--model-base``, the way TF Serving's file-system source does.

``<base>/<name>/<version>/saved_model.pb``: every sub-folder with numeric version folders is a model,
and its newest version is served. A newer version is loaded (and warmed up) beside the old one,
which keeps answering until the swap; a version that fails to load (e.g. still being copied) is
retried once its files change. Names and versions come from the folder listing only, so no request
can name a path outside the base.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the TF Text ops (raw-string BERT exports), as TF Serving bundles them
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from app.serving.errors import InvalidRequest, NotFound
from app.serving.tensors import Signature, from_tensor_proto
from app.serving.warmup import read_warmup_requests

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
DEFAULT_SIGNATURE = "serving_default"


def check_model_name(name: str) -> str:
    if not MODEL_NAME.fullmatch(name) or ".." in name:
        raise InvalidRequest(f"invalid model name {name[:80]!r}: use letters, digits, '_', '-' and '.'")
    return name


def check_version(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit() or len(version) > 18:
        raise InvalidRequest(f"invalid version {version[:40]!r}: versions are positive integers")
    return int(version)


def servable_versions(model_dir: Path) -> dict[int, Path]:
    """Version folders that hold a SavedModel, by version number, oldest first. As in TF Serving, a
    zero-padded folder name is its number (``00000123`` is version 123)."""
    found = {}
    for entry in sorted(model_dir.iterdir()):
        if entry.name.isdigit() and (entry / "saved_model.pb").is_file():
            found.setdefault(int(entry.name), entry)
    return dict(sorted(found.items()))


def _fingerprint(folder: Path) -> tuple:
    """Changes whenever a file under ``folder`` is added, removed or rewritten."""
    return tuple(sorted((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*") if path.is_file()))


def model_error_message(error: tf.errors.OpError) -> str:
    """The line of a graph error that helps the caller: a ``tf.debugging.Assert``'s own message
    (``assertion failed: [text] [value]`` becomes ``text value``), else the first line."""
    lines = error.message.splitlines()
    for line in lines:
        if line.startswith("assertion failed:"):
            parts = re.findall(r"\[([^\[\]]*)\]", line.removeprefix("assertion failed:"))
            return " ".join(parts).replace("\\'", "'")
    boilerplate = ("Graph execution error", "Detected at node", "<stack traces", "\t", " ")
    return next((line for line in lines if line.strip() and not line.startswith(boilerplate)), lines[0])


@dataclass
class Servable:
    """One loaded version of one model."""

    name: str
    version: int
    path: Path
    signatures: dict[str, Signature]
    signature_defs: get_model_metadata_pb2.SignatureDefMap
    loaded: object

    @classmethod
    def load(cls, name: str, version: int, path: Path) -> "Servable":
        proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        loaded = tf.saved_model.load(str(path))
        signature_defs = proto.meta_graphs[0].signature_def
        signatures = {key: Signature.from_proto(key, signature_defs[key]) for key in loaded.signatures}
        return cls(name, version, path, signatures, get_model_metadata_pb2.SignatureDefMap(signature_def=signature_defs), loaded)

    def signature(self, name: str | None) -> Signature:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise InvalidRequest(f'Serving signature key "{name}" not found (this model has {sorted(self.signatures)})')
        return self.signatures[name]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call one signature on checked input arrays; model-side failures become InvalidRequest."""
        function = self.loaded.signatures[signature_name]
        try:
            outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
            raise InvalidRequest(f"the model rejected the input: {model_error_message(error)}") from None
        return {name: np.array(value.numpy(), dtype=object if value.dtype == tf.string else None) for name, value in outputs.items()}

    def warm_up(self) -> int:
        """Replay the export's warm-up requests; returns how many ran."""
        requests = read_warmup_requests(self.path)
        for request in requests:
            signature = self.signature(request.model_spec.signature_name)
            self.run(signature.name, {key: from_tensor_proto(value, signature.inputs[key]) for key, value in request.inputs.items()})
        return len(requests)


class ModelRepository:
    """The models served from one base folder; ``refresh()`` picks up new versions."""

    def __init__(self, base: str | Path, log: Callable[[str], None] = print):
        self.base = Path(base)
        self.log = log
        self._servables: dict[str, Servable] = {}
        self._failed: dict[tuple[str, int], tuple] = {}
        self._refresh_lock = threading.Lock()

    def model_dirs(self) -> dict[str, Path]:
        """Folders under the base that look like models (valid name, at least one version)."""
        found = {}
        for entry in sorted(self.base.iterdir()):
            if MODEL_NAME.fullmatch(entry.name) and ".." not in entry.name and entry.is_dir() and servable_versions(entry):
                found[entry.name] = entry
        return found

    def refresh(self) -> None:
        """Load the newest loadable version of every model whose served version is not the newest."""
        with self._refresh_lock:
            model_dirs = self.model_dirs()
            for name in set(self._servables) - set(model_dirs):
                self.log(f"model {name} removed from {self.base}: no longer served")
                del self._servables[name]
            for name, model_dir in model_dirs.items():
                self._refresh_model(name, model_dir)

    def _refresh_model(self, name: str, model_dir: Path) -> None:
        current = self._servables.get(name)
        for version, path in reversed(servable_versions(model_dir).items()):
            if current is not None and current.version == version:
                return
            fingerprint = _fingerprint(path)
            if self._failed.get((name, version)) == fingerprint:
                continue
            try:
                servable = Servable.load(name, version, path)
                warmed = servable.warm_up()
            except Exception as error:  # a broken or half-copied version: keep serving the old one
                self._failed[(name, version)] = fingerprint
                self.log(f"could not load {name} version {version} from {path}: {str(error).splitlines()[0][:300]}")
                continue
            self._servables[name] = servable
            self._failed.pop((name, version), None)
            self.log(f"serving {name} version {version} ({len(servable.signatures)} signatures, {warmed} warm-up requests)")
            return

    @property
    def servables(self) -> dict[str, Servable]:
        return dict(self._servables)

    def get(self, name: str, version: str | None = None) -> Servable:
        """The servable for a request's model name and optional version (the served one must match)."""
        check_model_name(name)
        wanted = check_version(version)
        servable = self._servables.get(name)
        if servable is None or (wanted is not None and wanted != servable.version):
            request = f"Latest({name})" if wanted is None else f"Specific({name}, {wanted})"
            raise NotFound(f"Servable not found for request: {request}")
        return servable
