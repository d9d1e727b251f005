"""Which models to serve, from TF Serving's flags and files: ``--model_config_file`` (a text-format
``ModelServerConfig``), ``--model_name`` + ``--model_base_path`` (one model), or, without either,
every ``<name>/<version>/`` folder under ``--model-base`` (this project's default).

Paths in TF Serving's files are paths inside its container (``/models/mnist``, ``/config/...``).
``--volume HOST:CONTAINER`` maps them back, as ``docker run -v`` maps them in; the defaults
(``saved_models:/models``, ``serving:/config``) are the README's Docker command line, so its flags run
unchanged. A mapping applies only where the container path does not exist on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tensorflow_serving.config import model_server_config_pb2

from app.common.errors import UsageError
from app.serving.config_protos import read_text_proto
from app.serving.repository import ModelSource, servable_versions

@dataclass(frozen=True)
class Volume:
    """``HOST:CONTAINER`` (docker's ``-v`` syntax, an optional ``:ro`` ignored)."""

    host: Path
    container: str

    @classmethod
    def parse(cls, text: str) -> "Volume":
        parts = text.split(":")
        if parts[-1] in ("ro", "rw") and len(parts) == 3:
            parts = parts[:2]
        if len(parts) != 2 or not parts[0] or not parts[1].startswith("/"):
            raise UsageError(f"--volume {text!r}: expected HOST_FOLDER:/CONTAINER/PATH, as docker run -v takes it")
        return cls(Path(parts[0]), parts[1].rstrip("/") or "/")


def host_path(path: str, volumes: tuple[Volume, ...]) -> Path:
    """``path`` as seen from this machine: a container path under a volume becomes the host folder."""
    if Path(path).exists():
        return Path(path)
    for volume in volumes:
        if path == volume.container or path.startswith(volume.container + "/"):
            return volume.host / path[len(volume.container):].lstrip("/")
    return Path(path)


def read_model_config(path: str, volumes: tuple[Volume, ...]) -> list[ModelSource]:
    """The models of a ModelServerConfig file, checked as TF Serving's ServerCore checks them."""
    config = read_text_proto(host_path(path, volumes), model_server_config_pb2.ModelServerConfig)
    if config.WhichOneof("config") != "model_config_list":
        raise UsageError(f"{path}: only model_config_list is supported (custom_model_config is TF Serving's plug-in API)")
    sources, names = [], set()
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise UsageError(f"{path}: every config needs a name and a base_path")
        if model.name in names:  # server_core.cc, ValidateModelConfigList
            raise UsageError(f"{path}: Illegal to list model {model.name} multiple times in config list")
        if model.model_platform not in ("", "tensorflow"):
            raise UsageError(f"{path}: model {model.name} has model_platform {model.model_platform!r}; only 'tensorflow' is served")
        names.add(model.name)
        sources.append(ModelSource.from_config(model, host_path(model.base_path, volumes)))
    return sources


def discovered_models(base: Path) -> list[ModelSource]:
    """Every sub-folder of ``base`` with a version folder, each serving its newest version."""
    return [
        ModelSource(entry.name, entry)
        for entry in sorted(base.iterdir())
        if entry.is_dir() and not entry.name.startswith(".") and servable_versions(entry)
    ]


def model_sources(
    model_base: str, model_name: str, model_base_path: str | None, model_config_file: str | None, volumes: tuple[Volume, ...],
    log: Callable[[str], None], reload_config: bool = False,
) -> tuple[Callable[[], list[ModelSource]], str]:
    """A function listing the models to serve now, and a line saying where they come from.
    ``reload_config``: re-read the config file at every poll (``--model_config_file_poll_wait_seconds``)."""
    if model_config_file and model_base_path:
        raise UsageError("give --model_config_file or --model_base_path, not both (as tensorflow_model_server)")
    if model_config_file:
        current = read_model_config(model_config_file, volumes)

        def from_file() -> list[ModelSource]:
            nonlocal current
            if not reload_config:
                return current
            try:
                current = read_model_config(model_config_file, volumes)
            except UsageError as error:  # an edited, broken config: keep serving the last good one
                log(f"could not reload {model_config_file}: {error}")
            return current

        return from_file, f"models from {model_config_file}"
    if model_base_path:
        source = ModelSource(model_name, host_path(model_base_path, volumes))
        return lambda: [source], f"model {model_name} from {source.base_path}"
    base = Path(model_base)
    if not base.is_dir():
        raise UsageError(f"--model-base {base} is not a folder; export a model first: python -m app.train mnist")
    if not discovered_models(base):
        raise UsageError(f"no exported models under {base.resolve()} (expected <name>/<version>/saved_model.pb)")
    return lambda: discovered_models(base), f"every model under {base}"
