"""Which versions of which models are served: TF Serving's file-system source, version policies and labels.

A model is a ``ModelSource``: a name, a base folder of numbered version folders (``00000123/`` is
version 123) and a version policy, from ``--model_config_file``, ``--model_name/--model_base_path``
or, by default, every sub-folder of ``--model-base``. ``refresh()`` (polled) loads the versions the
policy wants and unloads the others; a new version is loaded (and warmed up) beside the old one,
which keeps answering until the swap. A version that fails to load is logged, skipped (the
``latest`` policy then serves the next older one) and retried once its files change; a missing or
broken model folder never stops the server. Names and versions come from the config and the folder
listing only, so no request can name a path outside them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tensorflow_serving.config import model_server_config_pb2

from app.serving.errors import InvalidRequest, NotFound
from app.serving.servable import Servable


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


@dataclass(frozen=True)
class ModelSource:
    """One model as TF Serving's ``ModelConfig`` describes it: where its versions are, which to serve
    (``latest`` N, ``all`` or ``specific`` ones) and the version labels (e.g. stable / canary)."""

    name: str
    base_path: Path
    policy: str = "latest"
    num_versions: int = 1
    specific: tuple[int, ...] = ()
    labels: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_config(cls, config: model_server_config_pb2.ModelConfig, base_path: Path) -> "ModelSource":
        policy = config.model_version_policy.WhichOneof("policy_choice") or "latest"
        return cls(
            config.name,
            base_path,
            policy,
            # TF Serving serves at least one version under `latest` (file_system_storage_path_source.cc).
            max(1, config.model_version_policy.latest.num_versions),
            tuple(sorted(config.model_version_policy.specific.versions)),
            tuple(sorted(config.version_labels.items())),
        )

    def candidates(self, on_disk: dict[int, Path]) -> list[int]:
        """Versions on disk the policy may serve, newest first."""
        if self.policy == "specific":
            return [version for version in sorted(self.specific, reverse=True) if version in on_disk]
        return sorted(on_disk, reverse=True)

    def wanted_count(self, candidates: list[int]) -> int:
        return self.num_versions if self.policy == "latest" else len(candidates)


@dataclass(frozen=True)
class VersionState:
    """A version's state as GetModelStatus reports it (``ModelVersionStatus.State`` name and error)."""

    state: str
    error: str = ""


class ModelRepository:
    """The models served; ``refresh()`` applies the sources' policies to what is on disk now."""

    def __init__(self, list_sources: Callable[[], list[ModelSource]], log: Callable[[str], None] = print, metrics=None,
                 warm_up: bool = True, labels_for_unavailable: bool = False):
        self.list_sources, self.log, self.metrics, self.warm_up = list_sources, log, metrics, warm_up
        self.labels_for_unavailable = labels_for_unavailable
        self._loaded: dict[str, dict[int, Servable]] = {}
        self._states: dict[str, dict[int, VersionState]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._failed: dict[tuple[str, int], tuple] = {}
        self._said: set[str] = set()
        self._refresh_lock = threading.Lock()

    def _say_once(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self.log(message)

    def refresh(self) -> None:
        with self._refresh_lock:
            sources = self.list_sources()
            for name in set(self._loaded) - {source.name for source in sources}:
                self.log(f"model {name} is gone: no longer served")
                for version in self._loaded[name]:
                    self._set_state(name, version, VersionState("END"))
                del self._loaded[name]
                self._labels.pop(name, None)
            for source in sources:
                self._refresh_model(source)

    def _set_state(self, name: str, version: int, state: VersionState) -> None:
        self._states[name] = {**self._states.get(name, {}), version: state}
        if self.metrics is not None:
            self.metrics.set_model_state(name, version, state.state)

    def _refresh_model(self, source: ModelSource) -> None:
        if not source.base_path.is_dir():
            self._say_once(f"model {source.name}: no folder at {source.base_path}; waiting for it")
            on_disk = {}
        else:
            on_disk = servable_versions(source.base_path)
        loaded = self._loaded.get(source.name, {})
        candidates = source.candidates(on_disk)
        for version in sorted(set(source.specific) - set(on_disk)):
            self._say_once(f"model {source.name}: version {version} of the config is not under {source.base_path}")
        kept: dict[int, Servable] = {}
        for version in candidates:
            if len(kept) == source.wanted_count(candidates):
                break
            servable = loaded.get(version) or self._load(source.name, version, on_disk[version])
            if servable is not None:
                kept[version] = servable
        for version in sorted(set(loaded) - set(kept)):
            self._set_state(source.name, version, VersionState("END"))
            self.log(f"model {source.name}: version {version} unloaded")
        self._loaded[source.name] = kept
        labels = {}
        for label, version in source.labels:
            if version in kept or self.labels_for_unavailable:
                labels[label] = version
            else:  # TF Serving's wording (server_core.cc, UpdateModelVersionLabelMap); it refuses the config
                self._say_once(
                    f"Request to assign label to version {version} of model {source.name}, which is not currently "
                    f"available for inference (label {label!r} waits for it; see --allow_version_labels_for_unavailable_models)"
                )
        self._labels[source.name] = labels

    def _load(self, name: str, version: int, path: Path) -> Servable | None:
        """Load and warm up one version; None (logged, remembered until its files change) if it fails."""
        fingerprint = _fingerprint(path)
        if self._failed.get((name, version)) == fingerprint:
            return None
        self._set_state(name, version, VersionState("LOADING"))
        started = time.perf_counter()
        try:
            servable = Servable.load(name, version, path)
            servable.metrics = self.metrics
            warmed = servable.warm_up() if self.warm_up else 0
        except Exception as error:  # a broken or half-copied version: keep serving the others
            message = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
            self._failed[(name, version)] = fingerprint
            self._set_state(name, version, VersionState("END", message))
            self._record_load(path, False, started)
            self.log(f"could not load {name} version {version} from {path}: {message}")
            return None
        self._failed.pop((name, version), None)
        self._set_state(name, version, VersionState("AVAILABLE"))
        self._record_load(path, True, started)
        self.log(f"serving {name} version {version} ({len(servable.signatures)} signatures, {warmed} warm-up requests)")
        return servable

    def _record_load(self, path: Path, ok: bool, started: float) -> None:
        if self.metrics is not None:
            self.metrics.record_load(str(path), ok, time.perf_counter() - started)

    @property
    def served(self) -> dict[str, list[int]]:
        """Model name -> the versions being served."""
        return {name: sorted(versions) for name, versions in self._loaded.items() if versions}

    def get(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a request's model spec, with TF Serving's errors (server_core.cc)."""
        if not name:
            raise InvalidRequest("ModelSpec has no name specified.")
        if version is not None and label is not None:
            raise InvalidRequest(f"Both model version ({version}) and model version label ({label}) cannot be supplied.")
        if label is not None:
            version = self._labels.get(name, {}).get(label)
            if version is None:
                raise InvalidRequest(f"Unrecognized servable version label: {label}")
        versions = self._loaded.get(name, {})
        servable = versions.get(version) if version is not None else versions[max(versions)] if versions else None
        if servable is None:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise NotFound(f"Servable not found for request: {request}")
        return servable

    def status(self, name: str, version: int | None = None) -> dict[int, VersionState]:
        """Version -> state for GetModelStatus, newest first as TF Serving's state monitor orders them
        (servable_state_monitor.h), with get_model_status_impl.cc's errors."""
        if not name:
            raise InvalidRequest("Missing model name in request.")
        states = self._states.get(name, {})
        if version is not None:
            if version not in states:
                raise NotFound(f"Could not find version {version} of model {name}")
            return {version: states[version]}
        if not states:
            raise NotFound(f"Could not find any versions of model {name}")
        return dict(sorted(states.items(), reverse=True))
