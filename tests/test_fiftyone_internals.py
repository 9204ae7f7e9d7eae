"""The private FiftyOne attributes that ``fiftyone_plugin.engine.safe_write`` relies on still exist.

A FiftyOne upgrade that renames one of them must fail here, by name, rather than inside a write.
"""

from __future__ import annotations


def test_private_attributes_used_by_safe_write_exist(fo, dataset_name):
    import fiftyone.core.odm as foo

    dataset = fo.Dataset(dataset_name())
    dataset.add_sample(fo.Sample(filepath="/tmp/autoscale-internals.png"))
    assert dataset._sample_collection_name in foo.get_db_conn().list_collection_names()
    assert callable(dataset._merge_sample_field_schema)
    assert str(dataset._doc.id)
