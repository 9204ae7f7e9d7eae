"""Importers for recorded driving data and the Parquet interchange format.

* :func:`autoscale_core.io.av2.import_av2` — Argoverse 2 sensor logs and forecasting scenarios.
* :func:`autoscale_core.io.interchange.export_scenes` / :func:`import_scenes` — the documented
  table format (docs/interchange.md) for bringing logs from any other source.
"""

from .av2 import AV2ImportError, ImportReport, import_av2
from .interchange import InterchangeError, export_scenes, import_scenes

__all__ = [
    "AV2ImportError",
    "ImportReport",
    "import_av2",
    "InterchangeError",
    "export_scenes",
    "import_scenes",
]
