"""The AutoScale scene interchange format: a folder of Parquet tables (docs/interchange.md).

:mod:`.format` defines it (tables, columns, the timeline header), :mod:`.write` exports a
SceneBatch (:func:`export_scenes`), :mod:`.read` imports and validates one (:func:`import_scenes`).
"""

from .format import DEFAULT_SPEED_LIMIT, FORMAT, REQUIRED, SCENE_COLUMNS, TABLES, VERSION, InterchangeError
from .read import import_scenes
from .write import export_scenes

__all__ = ["DEFAULT_SPEED_LIMIT", "FORMAT", "REQUIRED", "SCENE_COLUMNS", "TABLES", "VERSION", "InterchangeError",
           "export_scenes", "import_scenes"]
