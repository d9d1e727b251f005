"""Find a data file offline first, online last.

Every data set is looked for, in order, in:

1. the directory given with ``--data-dir`` (which must exist: a folder the user names is never
   silently replaced by another),
2. the directory in the ``FROMZERO_DATA`` environment variable,
3. ``../shared/data`` beside this checkout,
4. its online source (skipped when ``FROMZERO_OFFLINE=1``).

When all fail, :class:`DataError` names every place that was tried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from data_pipelines.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class OnlineSource:
    """Where a data set comes from on the internet and how to fetch it to a local file."""

    description: str
    fetch: Callable[[], str | Path]


def require_data_dir(data_dir: str | Path | None) -> None:
    """A ``--data-dir`` the user gave must be an existing folder (checked before any slow work)."""
    if data_dir and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir} does not exist or is not a folder")


def local_candidates(relative_path: str, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The local places, in search order, as (label, path) pairs."""
    places = []
    if data_dir:
        require_data_dir(data_dir)
        places.append(("--data-dir", Path(data_dir) / relative_path))
    if os.environ.get("FROMZERO_DATA"):
        places.append(("FROMZERO_DATA", Path(os.environ["FROMZERO_DATA"]) / relative_path))
    places.append(("shared data beside the checkout", SHARED_DATA_DIR / relative_path))
    return places


def resolve_data_file(
    relative_path: str,
    data_dir: str | Path | None = None,
    online: OnlineSource | None = None,
) -> Path:
    """Return the first existing copy of ``relative_path``, downloading it as a last resort.

    With ``data_dir`` the file must be there: the other places are searched only without it.
    """
    if data_dir:
        path = local_candidates(relative_path, data_dir)[0][1]
        if not path.is_file():
            raise DataError(f"{relative_path} not found in --data-dir {data_dir} (looked for {path})")
        return path
    tried = []
    for label, path in local_candidates(relative_path, data_dir):
        if path.is_file():
            return path
        tried.append(f"{path} ({label})")
    if online is not None and os.environ.get("FROMZERO_OFFLINE") == "1":
        tried.append(f"{online.description} (skipped: FROMZERO_OFFLINE=1)")
    elif online is not None:
        try:
            return Path(online.fetch())
        except Exception as error:  # any network or HTTP failure means "not available online"
            tried.append(f"{online.description} (download failed: {type(error).__name__})")
    raise DataError(
        f"could not find {relative_path}; looked in: " + "; ".join(tried)
        + ". Pass --data-dir or set FROMZERO_DATA to a folder holding it."
    )
