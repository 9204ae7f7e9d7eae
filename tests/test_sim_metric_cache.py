"""The scorer's one bounded metric cache: LRU bound, and entries tied to the scene's content."""

import numpy as np
import pytest

from autoscale_core.planning.evaluate import reference_progress
from autoscale_core.scene import SceneBatch
from autoscale_core.sim import scoring
from autoscale_core.sim.metric_cache import METRIC_CACHE, MetricCache
from autoscale_core.sim.planner import RulePlanner
from autoscale_core.sim.toy import constant_speed_plan, set_agent, straight_road


def test_metric_cache_is_a_bounded_lru():
    cache = MetricCache(max_entries=3)
    for i in range(3):
        cache.put(("a", i), i)
    assert cache.get(("a", 0)) == 0  # now the most recent: ("a", 1) is the oldest
    cache.put(("b", 9), 9)
    assert len(cache) == 3 and ("a", 1) not in cache and ("a", 0) in cache
    for i in range(100):
        cache.put(("c", i), i)
        assert len(cache) <= 3
    assert cache.get(("a", 0), "gone") == "gone"
    assert cache.count("c") == 3 and len(cache.section("c")) == 3
    cache.section("c").clear()
    assert not cache.section("c") and len(cache) == 0
    with pytest.raises(ValueError):
        MetricCache(max_entries=0)


def _two_scenes():
    batch = SceneBatch.concatenate([straight_road(ego_speed=8.0, num_agents=1), straight_road(ego_speed=4.0, num_agents=1)])
    set_agent(batch, 0, 0, -40.0, 0.0, 0.0)  # parked far behind: irrelevant at first
    batch.meta["scene_id"] = np.array(["a", "b"], dtype=object)
    return batch


def test_changed_agent_or_map_invalidates_the_ep_reference():
    METRIC_CACHE.clear()
    batch = _two_scenes()
    first = reference_progress(batch)
    assert METRIC_CACHE.count("ep_reference") == 2
    # Same scene ids and t0 ego state, a car now parked on the route ahead of scene "a".
    blocked = batch.replace(agents=batch.agents.copy())
    blocked.meta = dict(batch.meta)
    set_agent(blocked, 0, 0, 20.0, 0.0, 0.0)
    expected = RulePlanner().reference_progress(blocked)  # uncached
    assert expected[0] < first[0] - 1.0 and expected[1] == first[1]
    np.testing.assert_array_equal(reference_progress(blocked), expected)
    assert METRIC_CACHE.count("ep_reference") == 3  # only the changed scene was recomputed
    # A map edit (lanes moved) is a new content as well.
    moved = batch.replace(lanes=batch.lanes + np.float32(0.25))
    moved.meta = dict(batch.meta)
    scoring.rule_planner_progress(moved)
    assert METRIC_CACHE.count("ep_reference") == 5
    np.testing.assert_array_equal(reference_progress(batch), first)  # the originals are still cached


def test_changed_agent_invalidates_the_expert_metrics():
    METRIC_CACHE.clear()
    batch = _two_scenes()
    plans = constant_speed_plan(batch, 6.0)
    scoring.score_trajectories(batch, plans, reference_progress=np.full(2, 30.0))
    assert METRIC_CACHE.count("expert") == 2
    crash = batch.replace(agents=batch.agents.copy())
    crash.meta = dict(batch.meta)
    set_agent(crash, 0, 0, 25.0, 0.0, 0.0)  # the logged ego of "a" now runs into it
    filtered = scoring.score_trajectories(crash, plans, reference_progress=np.full(2, 30.0))
    assert METRIC_CACHE.count("expert") == 3
    fresh = scoring.expert_raw_metrics(crash, False, scoring.ScorerConfig())
    assert fresh["nc"][0] == 0.0 and filtered.nc[0, 0] == 1.0  # the human filter sees the new crash


def test_the_bound_holds_while_scoring():
    METRIC_CACHE.clear()
    old_bound = METRIC_CACHE.max_entries
    METRIC_CACHE.max_entries = 1  # smaller than the batch: values must come from what was computed
    try:
        batch = _two_scenes()
        plans = constant_speed_plan(batch, 6.0)
        bounded = scoring.score_trajectories(batch, plans)
        assert len(METRIC_CACHE) == 1
    finally:
        METRIC_CACHE.max_entries = old_bound
    METRIC_CACHE.clear()
    unbounded = scoring.score_trajectories(batch, plans)
    for key, value in unbounded.as_dict().items():
        np.testing.assert_array_equal(getattr(bounded, key), value, err_msg=key)
