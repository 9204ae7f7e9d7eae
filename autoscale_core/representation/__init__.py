"""Scene representation and value: hand-crafted features, Graph-RAE, error-pattern encoder,
faiss kNN indexes, clustering into domains, and safety / rarity / uncertainty value scores.

FiftyOne-free; estimators follow scikit-learn (``fit`` / ``transform``, plain arrays)::

    from autoscale_core.representation import GraphRAE, SceneClusterer, ValueScorer
    emb = GraphRAE(latent_dim=64).fit(train_batch, steps=150, seed=0).transform(pool_batch)  # (S, 64)
    labels = SceneClusterer(k=None).fit(emb).labels_              # k by silhouette
    scores = ValueScorer(1, 1, 1).fit(train_emb, train_safety).score(emb, mc_samples=mc)  # S, R, U, Q

``pipeline.embed_scenes`` / ``pipeline.value_scores`` wrap the three encoders (with planner
handling and MC-dropout samples) for the benchmarks, the FiftyOne operators and the CLI.
"""

from .clustering import SceneClusterer, cluster_purity  # noqa: F401
from .error_encoder import (  # noqa: F401
    ErrorPatternEncoder,
    error_pattern_inputs,
    error_pattern_tokens,
    mc_error_tokens,
    safety_descriptors,
    soft_collision_cost,
    supervised_contrastive_loss,
)  # noqa: F401
from .graph_rae import GraphRAE, build_graphs  # noqa: F401
from .handcrafted import FEATURE_NAMES, HandcraftedFeatures  # noqa: F401
from .index import KnnIndex  # noqa: F401
from .value import ValueScorer, mc_uncertainty, normalize_embeddings  # noqa: F401
