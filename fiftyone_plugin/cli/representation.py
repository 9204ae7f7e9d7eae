"""``autoscale embed``, ``autoscale cluster`` and ``autoscale value``: scene representation from the CLI."""

from __future__ import annotations

import json

from . import CommandError, _load, _progress

METHOD_CHOICES = ("handcrafted", "graph_rae", "error_pattern")


def register_commands(subparsers) -> None:
    embed = subparsers.add_parser("embed", help="embed scenes (emb_<method>), index them and map them in 2-D")
    embed.add_argument("--dataset", required=True)
    embed.add_argument("--method", choices=METHOD_CHOICES, default="graph_rae")
    embed.add_argument("--steps", type=int, default=None, help="encoder training steps (default per method)")
    embed.add_argument("--mc-samples", type=int, default=10, help="MC-dropout samples for U (0 = off)")
    embed.add_argument("--planner", default=None, help="planner checkpoint for error_pattern (default: train one)")
    embed.add_argument("--viz", choices=("auto", "pca", "tsne"), default="auto", help="2-D map method")
    embed.add_argument("--no-brain", action="store_true", help="skip the FiftyOne Brain similarity / map")
    embed.add_argument("--executor", default=None,
                       help="serial | process[:N] | ray[:address]: encodes the chunks of a view streamed from the "
                            "scene store (more than 50,000 scenes) in parallel (default: in this process)")
    embed.add_argument("--seed", type=int, default=0)
    embed.set_defaults(func=cmd_embed)

    cluster = subparsers.add_parser("cluster", help="cluster scene embeddings into domains (cluster_<method>)")
    cluster.add_argument("--dataset", required=True)
    cluster.add_argument("--method", choices=METHOD_CHOICES, default="graph_rae")
    cluster.add_argument("--k", type=int, default=None, help="clusters (default: chosen by silhouette)")
    cluster.add_argument("--domains-field", default=None, help="use this metadata field's values as domains")
    cluster.add_argument("--seed", type=int, default=0)
    cluster.set_defaults(func=cmd_cluster)

    value = subparsers.add_parser("value", help="safety / rarity / uncertainty value scores (value_s/r/u/q)")
    value.add_argument("--dataset", required=True)
    value.add_argument("--method", choices=METHOD_CHOICES, default="graph_rae")
    value.add_argument("--alpha", type=float, nargs=3, default=(1.0, 1.0, 1.0), metavar=("S", "R", "U"))
    value.add_argument("--k", type=int, default=20, help="rarity neighbours")
    value.set_defaults(func=cmd_value)


def _run(fn, *args, **kwargs) -> int:
    try:
        summary = fn(*args, progress=_progress, **kwargs)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_embed(args) -> int:
    from ..engine.representation import compute_scene_embeddings

    if args.mc_samples == 1 or args.mc_samples < 0:
        raise CommandError(f"--mc-samples must be 0 or >= 2, got {args.mc_samples}")
    return _run(compute_scene_embeddings, _load(args.dataset), args.method, seed=args.seed, steps=args.steps,
                mc_samples=args.mc_samples, planner_path=args.planner, viz_method=args.viz, brain=not args.no_brain,
                executor=args.executor)


def cmd_cluster(args) -> int:
    from ..engine.representation import cluster_scenes

    if args.k is not None and args.k < 1:
        raise CommandError(f"--k must be >= 1, got {args.k}")
    return _run(cluster_scenes, _load(args.dataset), args.method, k=args.k, domains_field=args.domains_field,
                seed=args.seed)


def cmd_value(args) -> int:
    from ..engine.representation import compute_value_scores

    a_s, a_r, a_u = args.alpha
    return _run(compute_value_scores, _load(args.dataset), args.method, alpha_s=a_s, alpha_r=a_r, alpha_u=a_u, k=args.k)


def demo_step(dataset, args) -> dict:
    """Engine step for ``autoscale demo`` (not registered by default; add
    ``"fiftyone_plugin.cli.representation:demo_step"`` to ``DEMO_STEPS``): Graph-RAE embeddings with the
    2-D map and similarity index, silhouette-chosen clusters, and S/R/U/Q value scores."""
    from ..engine.representation import cluster_scenes, compute_scene_embeddings, compute_value_scores

    seed = int(getattr(args, "seed", 0))
    if dataset.has_run("value_graph_rae") and dataset.count("value_q") == len(dataset):
        # A rerun of the demo on the same scenes: embeddings, clusters and scores are all there.
        return {"embedded_scenes": dataset.count("emb_graph_rae"), "reused": "emb/cluster/value_graph_rae",
                "value_q_mean": round(float(dataset.mean("value_q")), 4)}
    emb = compute_scene_embeddings(dataset, "graph_rae", seed=seed, progress=_progress)
    clusters = cluster_scenes(dataset, "graph_rae", seed=seed, progress=_progress)
    values = compute_value_scores(dataset, "graph_rae", progress=_progress)
    return {"embedded_scenes": emb["num_scenes"], "clusters": clusters["k"],
            "value_q_mean": round(values["summary"]["value_q"]["mean"], 4)}
