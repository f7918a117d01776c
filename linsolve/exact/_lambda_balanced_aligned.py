r"""lambda-balanced two-layer network with aligned anisotropic inputs: decoupled master modes.

Task ``Sxx = V diag(v) V^T`` sharing its eigenvectors with the right singular vectors of
``Syx = U diag(s) V^T``, and an init decoupled in that basis: ``W1 = R diag(w1) V^T``,
``W2 = U diag(w2) R^T`` (hidden rotation ``R``; rectangular diagonals), lambda-balanced
(``W2^T W2 - W1 W1^T = lam I``, so ``w2_a^2 - w1_a^2 = lam`` on every used hidden direction).
Gradient flow with rates ``1/tau`` and weight decay ``gamma`` keeps this structure (the flow of
each pair ``(w1_a, w2_a)`` involves only ``s_a``, ``v_a`` and itself), and ``a = w1 w2`` obeys

    tau da/dt = -[(v_a a - s_a) (w1^2 + w2^2) + 2 gamma a],   w1^2 + w2^2 = sqrt(lam^2 + 4 a^2),

i.e. :func:`~linsolve.exact.mode` with ``k = 1/tau``, ``A = 2``, ``B = |lam|``,
``variance = v_a`` (Braun et al. 2022, Dominé et al. 2025 for ``v = 1``; the variance enters as
``k -> k v``, ``s -> s/v``). The grams follow from ``a`` and ``lam``:
``w1^2 = (sqrt(lam^2 + 4a^2) - lam)/2``, ``w2^2 = (sqrt(lam^2 + 4a^2) + lam)/2``. Directions that
carry no mode (input directions outside the span of the modes, with ``Syx v = 0`` and
``W2 W1 v = 0``; likewise on the output side) are frozen by the data term and shrink like
``e^{-gamma t/tau}`` under weight decay (their grams like ``e^{-2 gamma t/tau}``); a mode with no
hidden direction (``w1 = w2 = 0`` while ``lam != 0``) stays at 0.

Weight decay: ``d(W2^T W2 - W1 W1^T)/dt = -(2 gamma/tau)(W2^T W2 - W1 W1^T)``, so ``lam`` decays
like ``lam e^{-2 gamma t/tau}``: only ``lam = 0`` stays a constant (the balanced logistic modes with
a shifted target); ``lam != 0`` with decay is non-autonomous and not supported.

**Detection.** All quantities are simultaneously diagonal in the mode basis. The basis is read off
the SVD of the generic combination ``C = (Syx/|Syx| + c1 P0/|P0|)(I + c2 Sxx/|Sxx|)``
(``P0 = W2 W1``, irrational ``c1``, ``c2``: distinct modes get distinct singular values); its
nonzero singular pairs are the modes, its null spaces the frozen directions. The init counts as
aligned when ``Syx``, ``P0`` are diagonal in ``(U, V)`` and ``Sxx``, ``W1^T W1`` (``W2 W2^T``) map
the ``V`` (``U``) columns onto themselves, within ``tol`` relative to their scales.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._mode import mode

_C1, _C2 = 0.6180339887498949, 0.7548776662466927


def aligned_basis(Syx, Sxx, W1, W2, tol):
    """Mode basis of an aligned init, or ``(None, residual)`` when the init is not aligned.

    Returns ``(basis, residual)``; `basis` is a dict of numpy arrays: ``U`` (d_out, r), ``V``
    (d_in, r), ``s``, ``a0``, ``var``, ``live`` (r,), ``A_perp``, ``B_perp`` (the gram parts
    outside the modes). All inputs are concrete.
    """
    S, X = np.asarray(Syx, np.float64), np.asarray(Sxx, np.float64)
    W1, W2 = np.asarray(W1, np.float64), np.asarray(W2, np.float64)
    A0, B0, P0 = W1.T @ W1, W2 @ W2.T, W2 @ W1
    tiny = np.finfo(np.float64).tiny
    nS, nP, nX = (max(float(np.linalg.norm(M)), tiny) for M in (S, P0, X))
    C = (S / nS + _C1 * P0 / nP) @ (np.eye(X.shape[0]) + _C2 * X / nX)
    Uc, sc, Vct = np.linalg.svd(C)
    eps = np.finfo(np.float64).eps
    r = int(np.sum(sc > 100 * max(C.shape) * eps * max(sc[0] if sc.size else 0.0, tiny)))
    U, V = Uc[:, :r], Vct[:r].T
    s = np.einsum("oa,oi,ia->a", U, S, V)
    a0 = np.einsum("oa,oi,ia->a", U, P0, V)
    var = np.einsum("ia,ij,ja->a", V, X, V)
    Ad = np.einsum("ia,ij,ja->a", V, A0, V)
    Bd = np.einsum("oa,op,pa->a", U, B0, U)
    gscale = max(float(np.max(np.abs(A0), initial=0.0)), float(np.max(np.abs(B0), initial=0.0)),
                 tiny)
    residual = max(
        float(np.max(np.abs(S - (U * s) @ V.T), initial=0.0)) / nS,
        float(np.max(np.abs(P0 - (U * a0) @ V.T), initial=0.0)) / max(nP, gscale),
        float(np.max(np.abs(X @ V - V * var), initial=0.0)) / nX,
        float(np.max(np.abs(A0 @ V - V * Ad), initial=0.0)) / gscale,
        float(np.max(np.abs(B0 @ U - U * Bd), initial=0.0)) / gscale,
    )
    if not residual <= tol:
        return None, residual
    live = (Ad + Bd) > tol * gscale
    basis = dict(U=U, V=V, s=s, a0=a0, var=var, live=live,
                 A_perp=A0 - (V * Ad) @ V.T, B_perp=B0 - (U * Bd) @ U.T)
    return basis, residual


def aligned_state(flat, basis, lam, tau, gamma, dtype):
    """``(product, input_gram, output_gram)`` at the times `flat` (T,), from the mode basis.

    `lam` and `gamma` are concrete floats (``gamma > 0`` only with ``lam = 0``); `tau` a scalar.
    """
    b = {k: jnp.asarray(v, dtype) if k != "live" else np.asarray(v) for k, v in basis.items()}
    live = b["live"]
    T = flat.shape[0]
    if live.size:
        var = jnp.where(live, b["var"], 1.0)
        a = mode(flat[:, None], F0=jnp.where(live, b["a0"], 0.0), s=b["s"], k=1.0 / tau, A=2.0,
                 B=abs(lam), variance=var, weight_decay=gamma)
        a = jnp.where(live, a, 0.0)
    else:
        a = jnp.zeros((T, 0), dtype)
    G = jnp.sqrt(lam * lam + 4 * a * a)
    den = G + abs(lam)
    small = jnp.where(den > 0, 2 * a * a / jnp.where(den > 0, den, 1.0), 0.0)  # no cancellation
    big = den / 2
    w1sq, w2sq = (small, big) if lam >= 0 else (big, small)
    w1sq, w2sq = jnp.where(live, w1sq, 0.0), jnp.where(live, w2sq, 0.0)  # no hidden unit: 0
    if gamma > 0:
        shrink = jnp.where(jnp.isinf(flat), 0.0,
                           jnp.exp(-2 * gamma * jnp.where(jnp.isinf(flat), 0.0, flat) / tau))
    else:
        shrink = jnp.ones_like(flat)
    U, V = b["U"], b["V"]
    product = jnp.einsum("oa,ta,ia->toi", U, a, V)
    A = jnp.einsum("ia,ta,ja->tij", V, w1sq, V) + shrink[:, None, None] * b["A_perp"]
    B = jnp.einsum("oa,ta,pa->top", U, w2sq, U) + shrink[:, None, None] * b["B_perp"]
    return product, A, B
