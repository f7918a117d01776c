"""Regression and classification tasks, held by their sufficient statistics.

A task is ``Sxx = X^T X / n`` (d_in, d_in), ``Syx = Y^T X / n`` (d_out, d_in) and
``Syy = Y^T Y / n`` (d_out, d_out), rows of ``X``, ``Y`` being samples. For a linear map ``P`` the
mean-squared loss is

    L(P) = 1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)  (= mean over samples of 1/2 |P x - y|^2),

so linear-network simulators cost nothing per sample. A task built from data also keeps ``X`` and
``Y`` (for minibatch SGD, nonlinear networks and the analysis modules), and classification tasks
keep their integer ``labels``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int

from ._validate import as_float, check_positive, default_float, random_orthonormal

__all__ = ["Task", "teacher", "scalar", "gaussian_mixture"]


class Task(eqx.Module):
    """Sufficient statistics of a regression task (and optionally the data they came from).

    **Fields:**
    - `Sxx`: (d_in, d_in) input second moment ``X^T X / n``.
    - `Syx`: (d_out, d_in) input-output cross moment ``Y^T X / n``.
    - `Syy`: (d_out, d_out) output second moment ``Y^T Y / n``.
    - `X`, `Y`: (n, d_in), (n, d_out) samples, or None for a population task.
    - `labels`: (n,) integer class labels for classification tasks, else None.
    """

    Sxx: Float[Array, "d_in d_in"]
    Syx: Float[Array, "d_out d_in"]
    Syy: Float[Array, "d_out d_out"]
    X: Float[Array, "n d_in"] | None = None
    Y: Float[Array, "n d_out"] | None = None
    labels: Int[Array, " n"] | None = None

    def __check_init__(self):
        Sxx, Syx, Syy = self.Sxx, self.Syx, self.Syy
        if Sxx.ndim != 2 or Sxx.shape[0] != Sxx.shape[1]:
            raise ValueError(f"`Sxx` must be square (d_in, d_in); got shape {tuple(Sxx.shape)}.")
        if Syx.ndim != 2 or Syx.shape[1] != Sxx.shape[0]:
            raise ValueError(
                f"`Syx` must have shape (d_out, d_in={Sxx.shape[0]}); got {tuple(Syx.shape)}."
            )
        if Syy.shape != (Syx.shape[0], Syx.shape[0]):
            raise ValueError(
                f"`Syy` must have shape (d_out, d_out)=({Syx.shape[0]}, {Syx.shape[0]}); "
                f"got {tuple(Syy.shape)}."
            )

    @classmethod
    def from_data(cls, X, Y, *, labels=None) -> Task:
        """The task of samples ``X`` (n, d_in) and targets ``Y`` (n, d_out) (or (n,))."""
        X = as_float(X, "X")
        Y = as_float(Y, "Y", X.dtype)
        if X.ndim != 2:
            raise ValueError(f"`X` must have shape (n, d_in); got {tuple(X.shape)}.")
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ValueError(f"`Y` must have shape (n={X.shape[0]}, d_out); got {tuple(Y.shape)}.")
        n = X.shape[0]
        if labels is not None:
            labels = jnp.asarray(labels)
            if labels.shape != (n,):
                raise ValueError(f"`labels` must have shape (n={n},); got {tuple(labels.shape)}.")
        return cls(X.T @ X / n, Y.T @ X / n, Y.T @ Y / n, X, Y, labels)

    @property
    def d_in(self) -> int:
        return self.Syx.shape[1]

    @property
    def d_out(self) -> int:
        return self.Syx.shape[0]

    @property
    def n(self) -> int | None:
        return None if self.X is None else self.X.shape[0]

    @property
    def dtype(self):
        return self.Syx.dtype

    def loss(self, P: Float[Array, "*batch d_out d_in"]) -> Float[Array, "*batch"]:
        """``1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)``; leading axes of ``P`` are kept."""
        cross = jnp.einsum("...oi,oi->...", P, self.Syx)
        quad = jnp.einsum("...oi,ij,...oj->...", P, self.Sxx, P)
        return 0.5 * jnp.trace(self.Syy) - cross + 0.5 * quad

    def optimum(self) -> Float[Array, "d_out d_in"]:
        """The least-squares map ``Syx Sxx^+`` (minimum-norm when Sxx is singular)."""
        return self.Syx @ jnp.linalg.pinv(self.Sxx)

    def svd(self):
        """``U, s, Vt`` of ``Syx`` (reduced), singular values in decreasing order."""
        return jnp.linalg.svd(self.Syx, full_matrices=False)

    def whitening_error(self) -> Float[Array, ""]:
        """``max |Sxx - I|``: zero for whitened inputs."""
        return jnp.max(jnp.abs(self.Sxx - jnp.eye(self.d_in, dtype=self.Sxx.dtype)))


def _whiten(X):
    """Rows of ``X`` transformed so that ``X^T X / n = I`` exactly (needs n >= d_in)."""
    n = X.shape[0]
    evals, evecs = jnp.linalg.eigh(X.T @ X / n)
    return X @ evecs @ jnp.diag(evals**-0.5) @ evecs.T


def teacher(
    key,
    d_in: int,
    d_out: int,
    singular_values,
    *,
    n: int | None = None,
    noise: float = 0.0,
    whiten: bool = True,
    dtype=None,
) -> Task:
    """A linear teacher ``y = W* x (+ noise)`` with ``W* = U diag(singular_values) V^T``.

    **Arguments:**
    - `key`: PRNG key; `U` and `V` are Haar-random with orthonormal columns.
    - `d_in`, `d_out`: input and output sizes.
    - `singular_values`: (r,) non-negative values, r <= min(d_in, d_out).
    - `n`: number of samples. None gives the population task (``Sxx = I``,
      ``Syx = W*``, ``Syy = W* W*^T + noise^2 I``); an integer samples Gaussian inputs.
    - `noise`: standard deviation of additive Gaussian label noise.
    - `whiten`: with `n`, transform the sampled inputs so ``X^T X / n = I`` exactly.
    """
    dtype = dtype or default_float()
    s = as_float(singular_values, "singular_values", dtype)
    if s.ndim != 1:
        raise ValueError(f"`singular_values` must be 1-D; got shape {tuple(s.shape)}.")
    r = s.shape[0]
    if r > min(d_in, d_out):
        raise ValueError(
            f"`singular_values` can have at most min(d_in, d_out)={min(d_in, d_out)} entries; "
            f"got {r}."
        )
    check_positive("singular_values", s, strict=False)
    check_positive("noise", noise, strict=False)
    ku, kv, kx, ke = jr.split(key, 4)
    U = random_orthonormal(ku, d_out, r, dtype)
    V = random_orthonormal(kv, d_in, r, dtype)
    W = (U * s[None, :]) @ V.T
    if n is None:
        eye_in, eye_out = jnp.eye(d_in, dtype=dtype), jnp.eye(d_out, dtype=dtype)
        return Task(eye_in, W, W @ W.T + noise**2 * eye_out)
    if whiten and n < d_in:
        raise ValueError(f"whitening needs n >= d_in={d_in} samples; got n={n}.")
    X = jr.normal(kx, (n, d_in), dtype)
    if whiten:
        X = _whiten(X)
    Y = X @ W.T + noise * jr.normal(ke, (n, d_out), dtype)
    return Task.from_data(X, Y)


def scalar(*, s, m2=1.0, dtype=None) -> Task:
    """The one-dimensional task ``Sxx = [[m2]]``, ``Syx = [[s m2]]``, ``Syy = [[s^2 m2]]``.

    Its loss is ``1/2 m2 (F - s)^2`` for the end-to-end scalar map ``F``.
    """
    dtype = dtype or default_float()
    s = as_float(s, "s", dtype)
    m2 = as_float(m2, "m2", dtype)
    if s.ndim or m2.ndim:
        raise ValueError("`s` and `m2` must be scalars.")
    check_positive("m2", m2)
    return Task(m2.reshape(1, 1), (s * m2).reshape(1, 1), (s * s * m2).reshape(1, 1))


def gaussian_mixture(
    key,
    n: int,
    d: int,
    k: int,
    *,
    separation: float = 3.0,
    noise: float = 1.0,
    targets: str = "onehot",
    dtype=None,
) -> Task:
    """K-class Gaussian mixture: balanced classes, means Haar-random at radius `separation`.

    Targets are one-hot (``targets="onehot"``) or ``+-1`` codes (``"pm1"``: 2 one-hot - 1).
    The returned task carries ``X``, ``Y`` and ``labels``.
    """
    if targets not in ("onehot", "pm1"):
        raise ValueError(f"`targets` must be 'onehot' or 'pm1'; got {targets!r}.")
    if k < 2 or n < k:
        raise ValueError(f"need k >= 2 classes and n >= k samples; got k={k}, n={n}.")
    check_positive("noise", noise, strict=False)
    dtype = dtype or default_float()
    km, kx = jr.split(key)
    means = jr.normal(km, (k, d), dtype)
    means = separation * means / jnp.linalg.norm(means, axis=1, keepdims=True)
    labels = jnp.arange(n) % k
    X = means[labels] + noise * jr.normal(kx, (n, d), dtype)
    Y = jax.nn.one_hot(labels, k, dtype=dtype)
    if targets == "pm1":
        Y = 2 * Y - 1
    return Task.from_data(X, Y, labels=labels)
