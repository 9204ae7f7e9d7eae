"""Export folders that never delete what the export did not write.

Every export (interchange scenes, annotation queues) is first written to a temporary folder
beside the target, then published with :func:`publish_export`:

* a missing or empty target is replaced by the temporary folder (one rename);
* an existing non-empty target is refused unless ``overwrite`` — and with ``overwrite`` only the
  files listed in the target's manifest ``.autoscale-export.json`` (the files a previous export
  wrote there) are removed; user files stay. A new file that would land on a user file (one not
  in the manifest) is refused before anything is moved. A non-empty target without a manifest
  was not written by an export, so ``overwrite`` refuses it too.

The manifest is written last, so after a crash mid-publish it still lists what the previous
export wrote (the rerun with ``overwrite`` removes those and the files already moved are
replaced).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

MANIFEST = ".autoscale-export.json"


class ExportTargetError(ValueError):
    """The export target holds files the export must not replace."""


def _owned_files(target: Path) -> list[str]:
    """Relative paths a previous export wrote into ``target`` (from its manifest)."""
    try:
        manifest = json.loads((target / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportTargetError(
            f"{target}: its export manifest {MANIFEST} is unreadable ({exc}); "
            "remove the folder yourself or choose another target"
        ) from exc
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ExportTargetError(f"{target}: export manifest {MANIFEST} has no list of files")
    return files


def _user_files(target: Path, owned: set[str]) -> list[str]:
    return sorted(
        str(p.relative_to(target)) for p in target.rglob("*")
        if not p.is_dir() and str(p.relative_to(target)) not in owned and p.name != MANIFEST
    )


def check_export_target(target: str | os.PathLike, *, overwrite: bool, what: str = "export") -> None:
    """Refuse early (before any work) a target the export may not write into."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ExportTargetError(f"{what} target {target} exists and is not a folder")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not overwrite:
        raise ExportTargetError(
            f"{what} target {target} exists and is not empty; pass overwrite (CLI: --overwrite) "
            "to replace a previous export there, or choose another folder"
        )
    if not (target / MANIFEST).is_file():
        raise ExportTargetError(
            f"{what} target {target} is not empty and was not written by an export "
            f"(no {MANIFEST}); refusing to overwrite files it did not write"
        )
    _owned_files(target)


def publish_export(tmp_dir: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool,
                   what: str = "export") -> Path:
    """Move the finished export in ``tmp_dir`` to ``target`` (see the module docstring).

    ``tmp_dir`` must be on the same file system as ``target`` (create it beside the target).
    Returns ``target``; ``tmp_dir`` is gone afterwards.
    """
    tmp_dir, target = Path(tmp_dir), Path(target)
    new_files = sorted(str(p.relative_to(tmp_dir)) for p in tmp_dir.rglob("*") if not p.is_dir())
    (tmp_dir / MANIFEST).write_text(json.dumps({"files": new_files}))
    check_export_target(target, overwrite=overwrite, what=what)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        os.replace(tmp_dir, target)
        return target
    owned = set(_owned_files(target))
    clashes = sorted(set(new_files) & set(_user_files(target, owned)))
    if clashes:
        raise ExportTargetError(
            f"{what} target {target}: {len(clashes)} file(s) the export would write are user files "
            f"(not from a previous export), e.g. {clashes[0]}; nothing was changed"
        )
    for relative in owned:
        old = target / relative
        if old.is_file() or old.is_symlink():
            old.unlink()
    for relative in new_files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_dir / relative, target / relative)
    os.replace(tmp_dir / MANIFEST, target / MANIFEST)  # last: it now lists the new files
    _remove_empty_dirs(target, owned - set(new_files))
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return target


def _remove_empty_dirs(root: Path, removed: set[str]) -> None:
    """Folders that held only the old export's removed files (deepest first); never ``root``
    and never a folder the user made (it did not hold an exported file)."""
    folders = {parent for rel in removed for parent in (root / rel).parents if root in parent.parents}
    for folder in sorted(folders, key=lambda p: -len(p.parts)):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
