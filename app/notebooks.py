"""Execute the step-by-step notebooks headless, in order, as ``make notebooks`` and CI do:
``python -m app.notebooks [--out notebooks/executed] [--full] [names...]``

Each notebook runs top to bottom in a fresh kernel (so hidden state cannot help it) with
``FROMZERO_QUICK=1`` unless ``--full``; the executed copy, outputs and figures included, is written
to ``--out`` even when a cell fails, so the error can be read in context.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from app.common.cli import ArgumentParser, positive_int, run_command
from app.common.errors import CommandFailed, UsageError

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
QUICK_WORK_DIR = NOTEBOOKS_DIR / "executed" / "quick"


def notebook_paths(names: Sequence[str] = ()) -> list[Path]:
    """The notebooks in their numbered order, or those whose file name starts with one of ``names``."""
    paths = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if names:
        chosen = [path for path in paths if any(path.name.startswith(name) for name in names)]
        unknown = [name for name in names if not any(path.name.startswith(name) for path in paths)]
        if unknown:
            raise UsageError(f"no notebook named {unknown} in {NOTEBOOKS_DIR} (have {[path.name for path in paths]})")
        return chosen
    return paths


def count_images(notebook) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def execute(path: Path, out_dir: Path, timeout: int) -> dict:
    """Run one notebook in a new kernel; returns its name, seconds, image count and first error (or None)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    started, error = time.perf_counter(), None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as failure:
        error = next((line for line in str(failure).splitlines() if "Error" in line), str(failure).splitlines()[0])
    finally:
        nbformat.write(notebook, out_dir / path.name)
    return {"notebook": path.name, "seconds": round(time.perf_counter() - started, 1), "images": count_images(notebook), "error": error}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m app.notebooks", description="Execute the notebooks headless.")
    parser.add_argument("names", nargs="*", help="notebooks to run, by file-name prefix (default: all, in order)")
    parser.add_argument("--out", default=str(NOTEBOOKS_DIR / "executed"), help="folder for the executed copies")
    parser.add_argument("--full", action="store_true", help="full data and epochs instead of QUICK mode")
    parser.add_argument(
        "--work-dir", default=str(QUICK_WORK_DIR),
        help="QUICK mode: where the notebooks write their models, runs and figures (notebook 4 serves what 1-3 wrote there)",
    )
    parser.add_argument("--timeout", type=positive_int, default=600, help="seconds allowed per cell")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    paths = notebook_paths(args.names)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["FROMZERO_QUICK"] = "0" if args.full else "1"  # the kernels inherit these
    os.environ["FROMZERO_NOTEBOOK_OUT"] = str(Path(args.work_dir).resolve())
    results = []
    for path in paths:
        print(f"running {path.name} ({'full' if args.full else 'QUICK'} mode) ...", flush=True)
        results.append(execute(path, out_dir, args.timeout))
        outcome = results[-1]["error"] or f"ok, {results[-1]['images']} figures"
        print(f"  {results[-1]['seconds']} s: {outcome}", flush=True)
    failed = [result for result in results if result["error"]]
    if failed:
        raise CommandFailed(
            "; ".join(f"{result['notebook']}: {result['error']}" for result in failed) + f" (executed copies in {out_dir})"
        )
    return {"out": str(out_dir), "quick": not args.full, "notebooks": results, "seconds": round(sum(r["seconds"] for r in results), 1)}


if __name__ == "__main__":
    run_command(main)
