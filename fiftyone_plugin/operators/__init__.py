"""The App forms: one module per area, each a thin ``foo.Operator`` over :mod:`fiftyone_plugin.engine`.

:mod:`.ui` holds the shared form helpers (target choice, field dropdowns, inline errors,
progress, delegation); :mod:`.pipeline` the order the App lists the operators in. Each area
module defines ``OPERATORS``; ``fiftyone_plugin.OPERATOR_MODULES`` lists the modules.
"""
