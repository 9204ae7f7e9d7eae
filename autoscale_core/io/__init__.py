"""Importers for recorded driving data and the Parquet interchange format.

* :func:`autoscale_core.io.av2.import_av2` — Argoverse 2 sensor logs and forecasting scenarios.
* :func:`autoscale_core.io.scenarionet.import_scenarionet` /
  :func:`autoscale_core.io.scenarionet_export.export_scenarionet` — ScenarioNet scene files
  (nuScenes, Waymo, nuPlan, … as converted by metadriverse/scenarionet); docs/scenarionet.md.
* :func:`autoscale_core.io.interchange.export_scenes` / :func:`import_scenes` — the documented
  table format (docs/interchange.md) for bringing logs from any other source.

The log importers share :mod:`autoscale_core.io.driving_log` (one log on a 10 Hz grid, the map,
the import report) and :mod:`autoscale_core.io.log_slicing` (route, slicing into scenes).
"""

from .av2 import AV2ImportError, import_av2
from .driving_log import ImportReport
from .interchange import InterchangeError, export_scenes, import_scenes
from .scenarionet import ScenarioNetImportError, import_scenarionet
from .scenarionet_export import ScenarioNetExportError, export_scenarionet

__all__ = [
    "AV2ImportError",
    "ImportReport",
    "import_av2",
    "InterchangeError",
    "export_scenes",
    "import_scenes",
    "ScenarioNetImportError",
    "import_scenarionet",
    "ScenarioNetExportError",
    "export_scenarionet",
]
