"""Scene representation and value: hand-crafted features, Graph-RAE, error-pattern encoder,
faiss kNN indexes, clustering into domains, and safety / rarity / uncertainty value scores.

FiftyOne-free; estimators follow scikit-learn (``fit`` / ``transform``, plain arrays)::

    from autoscale_core.representation import GraphRAE, SceneClusterer, ValueScorer
    emb = GraphRAE(latent_dim=64).fit(train_batch, steps=150, seed=0).transform(pool_batch)  # (S, 64)
    labels = SceneClusterer(k=None).fit(emb).labels_              # k by silhouette
    scores = ValueScorer(1, 1, 1).fit(train_emb, train_safety).score(emb, mc_samples=mc)  # S, R, U, Q

``pipeline.embed_scenes`` / ``pipeline.value_scores`` wrap the three encoders (with planner
handling and MC-dropout samples) for the benchmarks, the FiftyOne operators and the CLI.

The names below are imported on first use (PEP 562), not with the package: the torch encoders
cost ~2 s to import, and light users (``value``, ``index``, the App's operator listing) must not
pay for them.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "SceneClusterer": "clustering", "cluster_purity": "clustering",
    "ErrorPatternEncoder": "error_encoder", "error_pattern_inputs": "error_encoder",
    "error_pattern_tokens": "error_encoder", "mc_error_tokens": "error_encoder",
    "safety_descriptors": "error_encoder", "soft_collision_cost": "error_encoder",
    "supervised_contrastive_loss": "error_encoder",
    "GraphRAE": "graph_rae", "build_graphs": "graph_rae",
    "FEATURE_NAMES": "handcrafted", "HandcraftedFeatures": "handcrafted",
    "KnnIndex": "index",
    "ValueScorer": "value", "mc_uncertainty": "value", "normalize_embeddings": "value",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
