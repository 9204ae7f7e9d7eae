"""The plugin's FiftyOne-facing service layer: everything the App forms, the CLI and Python call.

Dataset glue (:mod:`.scenes`, :mod:`.scene_docs`, :mod:`.scene_adds`, :mod:`.bev_render`), run
records and keys (:mod:`.runs`, :mod:`.keys`), crash-safe writes (:mod:`.safe_write`,
:mod:`.ownership`), and one module per action area (:mod:`.io`, :mod:`.scenarionet`,
:mod:`.synthetic`, :mod:`.planning`, :mod:`.representation`, :mod:`.selection`, :mod:`.queue`,
:mod:`.experiment`, :mod:`.triage`, :mod:`.summary`). No module here imports
``fiftyone.operators`` (``tests/test_plugin_layout.py`` checks it).
"""
