"""Finding assignment folders: ``assignments/NN_topic/`` beside this package."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]          # the assignments/ folder
REPO = ROOT.parent                                  # the repository root (put on sys.path)


def all_assignments() -> list[Path]:
    """Every ``NN_topic`` folder that has a ``solution.ipynb``, sorted by number."""
    return sorted(p for p in ROOT.iterdir()
                  if p.is_dir() and p.name[:2].isdigit() and (p / "solution.ipynb").exists())


def find(name: str) -> Path:
    """The folder of assignment ``name``: its number ("01" or "1"), its folder name, or a path.

    Raises:
        ValueError: no such assignment (the message lists the available ones).
    """
    path = Path(name)
    if path.is_dir() and (path / "solution.ipynb").exists():
        return path.resolve()
    key = name.zfill(2) if name.isdigit() else name
    for folder in all_assignments():
        if folder.name == key or folder.name.split("_", 1)[0] == key:
            return folder
    known = ", ".join(f.name for f in all_assignments()) or "none"
    raise ValueError(f"unknown assignment {name!r}; available: {known}")


def find_from_cwd(start: Path | None = None) -> Path:
    """The assignment folder holding ``start`` (default: the working folder), walking upwards.

    Raises:
        FileNotFoundError: no ``test_graded.py`` in ``start`` or above it.
    """
    start = (start or Path.cwd()).resolve()
    for folder in [start, *start.parents]:
        if (folder / "test_graded.py").exists():
            return folder
    raise FileNotFoundError(f"no test_graded.py in {start} or above it: open the notebook from "
                            "its assignment folder, or pass check(..., folder='assignments/NN_topic')")
