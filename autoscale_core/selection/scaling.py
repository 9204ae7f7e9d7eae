"""Per-domain data scaling laws: ΔU(n) = a · (1 − exp(−n / τ)).

ΔU(n) is the gain in the closed-loop score (EPDMS) from adding n scenes of one domain to a base
training set, measured by pilot runs. :class:`ScalingLawFitter` fits ``a`` (the asymptotic gain,
EPDMS points) and ``τ`` (scenes; the curve reaches 63 % of ``a`` at n = τ) by bounded, robust
(soft-L1) nonlinear least squares from several starting points, and reports diagnostics.

Degenerate pilots degrade gracefully, always with a note in ``ScalingFit.warnings``:

* fewer than two usable points (failed pilots are NaN) or no measurable gain (flat or negative
  curve) → the ``zero`` model (no scenes allocated to that domain on merit);
* no saturation within the pilot sizes (τ at its upper bound) → the ``linear`` model
  ΔU = slope · n, whose extrapolation beyond the pilots is optimistic;
* a poor saturating fit (R² below ``min_r2``) → whichever of linear/zero fits better.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

__all__ = ["saturating_exp", "ScalingFit", "ScalingLawFitter", "fit_scaling_laws"]


def saturating_exp(n: np.ndarray, a: float, tau: float) -> np.ndarray:
    """a · (1 − exp(−n / τ)); n in scenes."""
    return a * -np.expm1(-np.asarray(n, dtype=np.float64) / tau)


@dataclass
class ScalingFit:
    """A fitted gain curve for one domain.

    ``model`` is ``exp`` (a, tau used), ``linear`` (slope used) or ``zero``.
    """

    model: str
    a: float = 0.0
    tau: float = 1.0
    slope: float = 0.0
    r2: float = float("nan")
    residual_std: float = float("nan")
    num_points: int = 0
    max_size: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        """Predicted gain (EPDMS points) at n scenes; (same shape as n)."""
        n = np.asarray(n, dtype=np.float64)
        if self.model == "exp":
            return saturating_exp(n, self.a, self.tau)
        if self.model == "linear":
            return self.slope * n
        return np.zeros_like(n)

    def marginal_gains(self, capacity: int) -> np.ndarray:
        """(capacity,) gain of the k-th added scene, k = 1 … capacity."""
        values = self.predict(np.arange(capacity + 1))
        return np.diff(values)

    @classmethod
    def from_dict(cls, data: dict) -> "ScalingFit":
        """Inverse of :meth:`to_dict` (e.g. from a run record)."""
        if data.get("model") not in ("exp", "linear", "zero"):
            raise ValueError(f"unknown scaling-law model {data.get('model')!r}")
        fields = ("a", "tau", "slope", "r2", "residual_std", "max_size")
        values = {k: float(data[k]) if data.get(k) is not None else float("nan") for k in fields if k in data}
        return cls(model=data["model"], num_points=int(data.get("num_points", 0)),
                   warnings=list(data.get("warnings", [])), **values)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "a": self.a, "tau": self.tau, "slope": self.slope, "r2": self.r2,
            "residual_std": self.residual_std, "num_points": self.num_points, "max_size": self.max_size,
            "warnings": list(self.warnings),
        }


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    resid = float(((y - pred) ** 2).sum())
    if total <= 1e-15:
        return 1.0 if resid <= 1e-15 else 0.0
    return 1.0 - resid / total


class ScalingLawFitter:
    """Fits ΔU(n) = a(1 − e^(−n/τ)) to pilot (size, gain) points.

    Args:
        flat_tol: gains (EPDMS points) at or below this are "no measurable gain".
        min_r2: below this R² the saturating fit is rejected in favour of linear/zero.
        tau_bounds: τ bounds as multiples of the largest pilot size.
        num_inits: starting τ values tried (log-spaced within the bounds); the best fit wins.
        loss: ``soft_l1`` (robust to one bad pilot) or ``linear`` (plain least squares).
    """

    def __init__(
        self,
        flat_tol: float = 1e-3,
        min_r2: float = 0.5,
        tau_bounds: tuple[float, float] = (0.02, 20.0),
        num_inits: int = 5,
        loss: str = "soft_l1",
    ):
        if flat_tol < 0 or not (0 < tau_bounds[0] < tau_bounds[1]) or num_inits < 1:
            raise ValueError("invalid ScalingLawFitter parameters")
        self.flat_tol, self.min_r2, self.tau_bounds, self.num_inits, self.loss = flat_tol, min_r2, tau_bounds, num_inits, loss

    def fit(self, sizes: Sequence[float], gains: Sequence[float], *, name: str = "domain",
            sigma: Sequence[float] | None = None) -> ScalingFit:
        """Fit one domain.

        Args:
            sizes: (P,) pilot sizes (scenes added), > 0.
            gains: (P,) measured gains (EPDMS points); NaN marks a failed pilot.
            name: used in messages.
            sigma: (P,) optional standard errors of the gains (EPDMS points, > 0), e.g. from the
                spread over pilot seeds: points are weighted by 1/sigma² in the saturating fit,
                and the robust loss's scale becomes one standard error.
        """
        sizes = np.asarray(sizes, dtype=np.float64).ravel()
        gains = np.asarray(gains, dtype=np.float64).ravel()
        if sizes.shape != gains.shape:
            raise ValueError(f"{name}: {len(sizes)} pilot sizes but {len(gains)} gains")
        if (sizes[np.isfinite(sizes)] <= 0).any() or not np.isfinite(sizes).all():
            raise ValueError(f"{name}: pilot sizes must be positive and finite, got {sizes.tolist()}")
        notes = []
        ok = np.isfinite(gains)
        if (~ok).any():
            notes.append(f"{int((~ok).sum())} failed pilot run(s) ignored")
        x, y = sizes[ok], gains[ok]
        weights = None
        if sigma is not None:
            sigma = np.asarray(sigma, dtype=np.float64).ravel()
            if sigma.shape != sizes.shape or not (sigma[ok] > 0).all():
                raise ValueError(f"{name}: sigma must be one positive value per pilot size, got {sigma.tolist()}")
            weights = sigma[ok]
        max_size = float(sizes.max()) if len(sizes) else 0.0
        if len(np.unique(x)) < 2:
            notes.append("fewer than 2 usable pilot sizes: zero-gain model")
            return ScalingFit("zero", num_points=len(x), max_size=max_size, warnings=notes)
        if y.max() <= self.flat_tol:
            notes.append(f"flat curve: no measurable gain (max gain {y.max():.4g} <= {self.flat_tol:g}): zero-gain model")
            return self._with_stats(ScalingFit("zero", num_points=len(x), max_size=max_size, warnings=notes), x, y)

        exp_fit = self._fit_exp(x, y, weights)
        linear = self._fit_linear(x, y)
        if exp_fit is None:
            notes.append("saturating fit did not converge: linear model")
            return self._with_stats(linear, x, y, notes, max_size)
        if exp_fit.tau >= 0.99 * self.tau_bounds[1] * x.max() or exp_fit.a >= 0.99 * self._a_max(y):
            notes.append("no saturation within the pilot sizes (a or tau at its bound): linear model, optimistic beyond the pilots")
            return self._with_stats(linear, x, y, notes, max_size)
        exp_fit = self._with_stats(exp_fit, x, y, notes, max_size)
        if exp_fit.r2 < self.min_r2:
            linear = self._with_stats(linear, x, y, [], max_size)
            zero = self._with_stats(ScalingFit("zero"), x, y, [], max_size)
            best = linear if linear.r2 > max(zero.r2, exp_fit.r2) else zero
            best.warnings = notes + [f"poor saturating fit (R²={exp_fit.r2:.2f} < {self.min_r2}): {best.model} model"]
            return best
        return exp_fit

    # ------------------------------------------------------------------ internals
    def _fit_exp(self, x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None = None) -> ScalingFit | None:
        lo, hi = self.tau_bounds[0] * x.max(), self.tau_bounds[1] * x.max()
        a_hi = self._a_max(y)
        best, best_cost = None, np.inf
        for tau0 in np.geomspace(lo * 2, hi / 2, self.num_inits):
            a0 = float(np.clip(y.max() / max(-np.expm1(-x.max() / tau0), 1e-6), 1e-9, a_hi * 0.99))
            try:
                with _warnings.catch_warnings():
                    _warnings.simplefilter("ignore", OptimizeWarning)
                    params, _ = curve_fit(
                        saturating_exp, x, y, p0=(a0, tau0), bounds=([0.0, lo], [a_hi, hi]), sigma=sigma,
                        method="trf", loss=self.loss, max_nfev=2000,
                        f_scale=1.0 if sigma is not None else max(abs(y).max() * 0.1, 1e-9),
                    )
            except (RuntimeError, ValueError):
                continue
            cost = float((((saturating_exp(x, *params) - y) / (1.0 if sigma is None else sigma)) ** 2).sum())
            if cost < best_cost - 1e-15:
                best, best_cost = params, cost
        if best is None:
            return None
        return ScalingFit("exp", a=float(best[0]), tau=float(best[1]))

    @staticmethod
    def _a_max(y: np.ndarray) -> float:
        # The asymptote may exceed the largest measured gain, but not by orders of magnitude.
        return max(10.0 * float(np.abs(y).max()), 1e-6)

    @staticmethod
    def _fit_linear(x: np.ndarray, y: np.ndarray) -> ScalingFit:
        slope = max(float((x * y).sum() / (x * x).sum()), 0.0)  # through the origin, non-negative
        return ScalingFit("linear", slope=slope)

    @staticmethod
    def _with_stats(fit: ScalingFit, x, y, notes=None, max_size=None) -> ScalingFit:
        if fit.model == "linear" and fit.slope <= 0:
            fit = ScalingFit("zero", warnings=["no positive trend in the pilot gains: zero-gain model"])
        pred = fit.predict(x)
        fit.r2 = _r2(y, pred)
        fit.residual_std = float(np.std(y - pred))
        fit.num_points = int(len(x))
        if max_size is not None:
            fit.max_size = float(max_size)
        if notes:
            fit.warnings = list(notes) + fit.warnings
        return fit


def fit_scaling_laws(
    sizes: dict[str, Sequence[float]], gains: dict[str, Sequence[float]], fitter: ScalingLawFitter | None = None
) -> dict[str, ScalingFit]:
    """Fit every domain: ``{domain: sizes}``, ``{domain: gains}`` → ``{domain: ScalingFit}``."""
    fitter = fitter or ScalingLawFitter()
    missing = set(sizes) ^ set(gains)
    if missing:
        raise ValueError(f"domains without both sizes and gains: {sorted(missing)}")
    if not sizes:
        raise ValueError("no domains to fit")
    return {name: fitter.fit(sizes[name], gains[name], name=f"domain {name!r}") for name in sizes}
