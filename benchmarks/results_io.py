"""Writing a benchmark's result: ``<out>/<name>.json`` (the numbers) and ``<out>/<name>.md`` (the
table a reader looks at), the pair every benchmark leaves in ``benchmarks/results/``."""

from __future__ import annotations

import json
import os


def write_result(out_dir: str, name: str, result: dict, markdown: str) -> tuple[str, str]:
    """Write ``result`` as indented JSON and ``markdown`` beside it; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    json_path, md_path = os.path.join(out_dir, f"{name}.json"), os.path.join(out_dir, f"{name}.md")
    with open(json_path, "w") as fh:
        json.dump(result, fh, indent=1)
    with open(md_path, "w") as fh:
        fh.write(markdown)
    return json_path, md_path
