r"""Largest stable learning rate of gradient descent at the balanced global minimum.

A depth-``L`` linear net ``P = W_L ... W_1`` trained by GD with per-layer rates ``lr d_l``
(``W_l <- W_l - lr d_l dL/dW_l``) is linearly stable at a minimum iff
``lr lambda_max(D^{1/2} H D^{1/2}) < 2``, ``H`` the Hessian of the loss in the parameters and
``D = diag(d_l)`` (each entry repeated over its layer's parameters). At the balanced minimum this
eigenvalue has a closed form.

**Derivation.** The loss is ``l(P) = 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)``. With ``Sxx``
positive definite the minimum is ``P* = Syx Sxx^{-1}``, where the gradient ``P Sxx - Syx``
vanishes; the second-order term of the chain rule drops and ``H = J^T Q J``, with ``J`` the
Jacobian of ``P`` in the parameters and ``Q: X -> X Sxx`` the curvature of ``l``. The nonzero
eigenvalues of ``D^{1/2} J^T Q J D^{1/2}`` are those of ``Q^{1/2} (J D J^T) Q^{1/2}``, and
``dP = sum_l W_{>l} dW_l W_{<l}`` gives

    J D J^T: X -> sum_l d_l (W_{>l} W_{>l}^T) X (W_{<l}^T W_{<l}).

Let ``P* = U diag(sig) V^T`` be a full SVD (``U`` (d_out, d_out), ``V`` (d_in, d_in), ``sig``
padded with zeros). The balanced factors (``W_{l+1}^T W_{l+1} = W_l W_l^T``; hidden widths >=
rank P*) have per-layer singular values ``sig^{1/L}``, so ``W_{>l} W_{>l}^T = U diag(sig^{2(L-l)/L})
U^T`` and ``W_{<l}^T W_{<l} = V diag(sig^{2(l-1)/L}) V^T`` (``0^0 = 1``: ``W_{>L}``, ``W_{<1}`` are
identities). In the basis ``X~ = U^T X V``, ``J D J^T`` multiplies entry ``(a, b)`` by

    k_ab = sum_{l=1}^L d_l sig_a^{2(L-l)/L} sig_b^{2(l-1)/L},

while ``Q`` acts on the input index only, ``X~ -> X~ S`` with ``S = V^T Sxx V``. Row ``a`` of
``X~`` is therefore mapped by ``diag(k_a) S``, similar to the symmetric

    M_a = diag(sqrt(k_a)) S diag(sqrt(k_a)),     lambda_max = max_a eigmax(M_a).

* Aligned inputs (``S = diag(v)``): ``lambda_max = max_{a,b} v_b k_ab``.
* Whitened inputs and equal rates: ``lambda_max = L s_1^{2 - 2/L}`` (``s_1`` the top singular
  value of ``Syx``); for one mode this is the stability limit ``lr v L |u*|^{2-2/L} < 2`` of
  :func:`~linsolve.exact.saxe_mode_gd`.
* ``L = 1``: ``lambda_max = d_1 eigmax(Sxx)``, the classical ``lr < 2 / eigmax(Sxx)``.

**Width-d one-hidden-layer model** ``f(x) = kappa (u . w) x`` (``u, w`` in ``R^d``), loss
``1/2 m2 (F - s)^2``, ``F = kappa u.w``, rates ``lr_u``, ``lr_w``. Its gradient is
``m2 (F - s) kappa (w, u)``; at a minimum ``F = s`` only the Gauss-Newton term remains,
``H = m2 kappa^2 g g^T`` with ``g = (w, u)``. With ``D = diag(lr_u I_d, lr_w I_d)``,
``D^{1/2} H D^{1/2} = m2 kappa^2 h h^T``, ``h = (sqrt(lr_u) w, sqrt(lr_w) u)``, of rank one: its
one nonzero eigenvalue is ``m2 kappa^2 (lr_u |w|^2 + lr_w |u|^2)``. The linearised GD map
``I - D H`` has the eigenvalue ``1 - m2 kappa^2 (lr_u |w|^2 + lr_w |u|^2)`` along ``D^{1/2} h``
and 1 on the rest (the directions along the manifold of minima ``kappa u.w = s`` and those
without curvature, which are marginal), so the minimum is linearly stable iff

    m2 kappa^2 (lr_u |w|^2 + lr_w |u|^2) < 2,

with equal rates ``lr m2 K < 2``, ``K = kappa^2 (|u|^2 + |w|^2)`` (the NTK at ``x = 1``). This is
the case ``L = 2``, ``d_in = d_out = 1``, ``Sxx = m2`` of the above at any (not only balanced)
minimum: ``W_1 = w``, ``W_2 = kappa u^T``.

References: Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari (2020), arXiv:2003.02218 (the uv
model and ``lr < 2/lambda``); Cohen, Kaur, Li, Kolter & Talwalkar (2021), arXiv:2103.00065
(sharpness ``2/lr`` as the stability limit of GD); Saxe, McClelland & Ganguli (2014),
arXiv:1312.6120 (balanced modes).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validate import is_concrete, per_layer
from ..tasks import Task
from ._saxe import _check_depth

__all__ = ["max_learning_rate", "minimum_sharpness"]


def _validate(task, depth, lrs):
    if not isinstance(task, Task):
        raise ValueError(f"`task` must be a linsolve.Task; got {type(task).__name__}.")
    L = _check_depth(depth)
    dtype = task.dtype
    d = per_layer("lrs", 1.0 if lrs is None else lrs, L, dtype)
    if is_concrete(task.Sxx):
        evals = np.linalg.eigvalsh(np.asarray(task.Sxx, np.float64))
        tol = task.d_in * float(jnp.finfo(dtype).eps) * max(float(evals[-1]), 0.0)
        if not evals[0] > tol:
            raise ValueError(
                "`task.Sxx` must be positive definite (the minimum P* = Syx Sxx^{-1} must be "
                f"unique); got smallest eigenvalue {evals[0]:.3g} (largest {evals[-1]:.3g})."
            )
    return L, d


def minimum_sharpness(task: Task, *, depth: int, lrs=None) -> Float[Array, ""]:
    r"""Top eigenvalue of ``D^{1/2} H D^{1/2}`` at the balanced global minimum of a linear net.

    ``lambda_max = max_a eigmax(diag(sqrt(k_a)) S diag(sqrt(k_a)))``, ``S = V^T Sxx V``,
    ``k_ab = sum_l d_l sig_a^{2(L-l)/L} sig_b^{2(l-1)/L}`` (``0^0 = 1``) from the full SVD
    ``Syx Sxx^{-1} = U diag(sig) V^T`` (module docstring); aligned inputs give
    ``max_{a,b} v_b k_ab``, whitened inputs with equal rates ``L s_1^{2-2/L}``. Assumes every
    hidden width is at least ``rank(Syx)`` (else the minimum is not reachable).

    **Arguments:**

    - `task`: a :class:`~linsolve.Task` whose ``Sxx`` is positive definite.
    - `depth`: number of weight matrices ``L`` (Python int >= 1).
    - `lrs`: per-layer rate multipliers ``(d_1, ..., d_L)`` > 0 (or a scalar); default all 1.

    **Returns:** () the eigenvalue (0 when ``Syx = 0`` and ``L >= 2``: the minimum at the origin
    has no curvature). Cost ``O(min(d_out, d_in + 1) d_in^3)``; jit-able in the task.

    References: Lewkowycz et al. (2020), arXiv:2003.02218; Cohen et al. (2021),
    arXiv:2103.00065.
    """
    L, d = _validate(task, depth, lrs)
    return _sharpness(task.Sxx, task.Syx, d, L)


def max_learning_rate(task: Task, *, depth: int, lrs=None) -> Float[Array, ""]:
    r"""Largest base rate at which GD is linearly stable at the balanced global minimum.

    ``lr_max = 2 / lambda_max(D^{1/2} H D^{1/2})``: GD with rates ``lr d_l`` on the layers of a
    depth-``L`` linear net started near the balanced minimum ``P* = Syx Sxx^{-1}`` converges for
    ``lr < lr_max`` and leaves it for ``lr > lr_max``; ``lambda_max = 2 / lr_max`` is
    :func:`minimum_sharpness` (closed form in the module docstring: ``L s_1^{2-2/L}`` for
    whitened inputs and equal rates, ``max_{a,b} v_b k_ab`` for aligned inputs).

    The width-d one-hidden-layer model ``f(x) = kappa (u . w) x`` with loss
    ``1/2 m2 (F - s)^2`` and rates ``lr_u``, ``lr_w`` is the case ``L = 2``,
    ``d_in = d_out = 1``: a minimum with weights ``u, w`` (balanced or not) is linearly stable iff
    ``m2 kappa^2 (lr_u |w|^2 + lr_w |u|^2) < 2`` (equal rates: ``lr m2 K < 2``,
    ``K = kappa^2 (|u|^2 + |w|^2)``); derivation in the module docstring.

    **Arguments:**

    - `task`: a :class:`~linsolve.Task` whose ``Sxx`` is positive definite.
    - `depth`: number of weight matrices ``L`` (Python int >= 1). Hidden widths are assumed
      ``>= rank(Syx)``.
    - `lrs`: per-layer rate multipliers ``(d_1, ..., d_L)`` > 0 (or a scalar); default all 1.

    **Returns:** () the learning rate (``inf`` when the minimum has no curvature, i.e.
    ``Syx = 0`` with ``L >= 2``).

    References: Lewkowycz et al. (2020), arXiv:2003.02218; Cohen et al. (2021),
    arXiv:2103.00065.
    """
    L, d = _validate(task, depth, lrs)
    lam = _sharpness(task.Sxx, task.Syx, d, L)
    return jnp.where(lam > 0, 2 / jnp.where(lam > 0, lam, 1.0), jnp.inf)


def _power(x, e: float):
    """``x^e`` with ``0^0 = 1`` (``e`` a static exponent >= 0)."""
    return jnp.ones_like(x) if e == 0 else x**e


@functools.partial(jax.jit, static_argnums=3)
def _sharpness(Sxx, Syx, d, L: int):
    d_out, d_in = Syx.shape
    P = jnp.linalg.solve(Sxx, Syx.T).T  # Syx Sxx^{-1} (Sxx symmetric)
    _, sig, Vt = jnp.linalg.svd(P, full_matrices=True)
    # Output rows a >= min(d_out, d_in) all have sig_a = 0, hence equal k_a: keep one of them.
    rows = min(d_out, d_in + 1)
    sig_out = jnp.zeros(rows, sig.dtype).at[: sig.shape[0]].set(sig[:rows])
    sig_in = jnp.zeros(d_in, sig.dtype).at[: sig.shape[0]].set(sig[:d_in])
    k = sum(
        d[l - 1] * _power(sig_out, 2 * (L - l) / L)[:, None] * _power(sig_in, 2 * (l - 1) / L)[None]
        for l in range(1, L + 1)
    )  # (rows, d_in)
    S = Vt @ Sxx @ Vt.T
    root = jnp.sqrt(k)
    M = root[:, :, None] * S[None] * root[:, None, :]
    return jnp.max(jnp.linalg.eigvalsh(M)[:, -1])
