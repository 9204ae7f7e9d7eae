"""The Data Engine panel (:mod:`.data_engine`); its numbers come from :mod:`fiftyone_plugin.engine.summary`."""
