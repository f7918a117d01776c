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
import numpy as np
from jaxtyping import Array, Float, Int

from ._validate import (
    as_array,
    as_float,
    as_scalar,
    check_float_dtype,
    check_key,
    check_overflow,
    check_positive,
    check_size,
    float_dtype_of,
    is_concrete,
    random_orthonormal,
)

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

    def __init__(self, Sxx, Syx, Syy, X=None, Y=None, labels=None):
        """Validate and store the moments (and data); all floats share the widest input dtype.

        Raises ValueError (naming the field) for non-numeric, non-finite, asymmetric or
        negative-diagonal second moments and ill-shaped data, labels that are not non-negative
        integers; value checks run only on concrete arrays (not under jit/vmap).
        """
        dtype = float_dtype_of(Sxx, Syx, Syy, X, Y)
        self.Sxx = as_float(Sxx, "Sxx", dtype)
        self.Syx = as_float(Syx, "Syx", dtype)
        self.Syy = as_float(Syy, "Syy", dtype)
        self.X = None if X is None else as_float(X, "X", dtype)
        self.Y = None if Y is None else as_float(Y, "Y", dtype)
        self.labels = None if labels is None else _as_labels(labels)

    def __check_init__(self):
        Sxx, Syx, Syy = self.Sxx, self.Syx, self.Syy
        if Sxx.ndim != 2 or Sxx.shape[0] != Sxx.shape[1] or Sxx.shape[0] == 0:
            raise ValueError(
                f"`Sxx` must be square (d_in, d_in) with d_in >= 1; got shape {tuple(Sxx.shape)}."
            )
        if Syx.ndim != 2 or Syx.shape[1] != Sxx.shape[0] or Syx.shape[0] == 0:
            raise ValueError(
                f"`Syx` must have shape (d_out, d_in={Sxx.shape[0]}); got {tuple(Syx.shape)}"
                + (" (d_out must be >= 1)." if Syx.ndim == 2 and Syx.shape[0] == 0 else ".")
            )
        if Syy.shape != (Syx.shape[0], Syx.shape[0]):
            raise ValueError(
                f"`Syy` must have shape (d_out, d_out)=({Syx.shape[0]}, {Syx.shape[0]}); "
                f"got {tuple(Syy.shape)}."
            )
        _check_second_moment("Sxx", Sxx)
        _check_second_moment("Syy", Syy)
        if (self.X is None) != (self.Y is None):
            raise ValueError("`X` and `Y` must be given together (or neither).")
        if self.X is not None:
            n = self.X.shape[0] if self.X.ndim == 2 else None
            if self.X.shape != (n, Sxx.shape[0]):
                raise ValueError(f"`X` must have shape (n, d_in={Sxx.shape[0]}); got {self.X.shape}.")
            if self.Y.shape != (n, Syx.shape[0]):
                raise ValueError(
                    f"`Y` must have shape (n={n}, d_out={Syx.shape[0]}); got {self.Y.shape}."
                )
            if self.labels is not None and self.labels.shape != (n,):
                raise ValueError(f"`labels` must have shape (n={n},); got {self.labels.shape}.")

    @classmethod
    def from_data(cls, X, Y, *, labels=None) -> Task:
        """The task of samples ``X`` (n, d_in) and targets ``Y`` (n, d_out) (or (n,)).

        Needs n >= 1 and d_in, d_out >= 1; the moments must not overflow the dtype (entries up to
        about ``sqrt(max_float / n)``); `labels`, when given, are (n,) non-negative integers.
        """
        dtype = float_dtype_of(X, Y)
        X = as_float(X, "X", dtype)
        Y = as_float(Y, "Y", dtype)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(
                f"`X` must have shape (n, d_in) with n, d_in >= 1; got {tuple(X.shape)}."
            )
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or Y.shape[0] != X.shape[0] or Y.shape[1] == 0:
            raise ValueError(
                f"`Y` must have shape (n={X.shape[0]}, d_out); got {tuple(Y.shape)}"
                + (" (d_out must be >= 1)." if Y.ndim == 2 and Y.shape[1] == 0 else ".")
            )
        n = X.shape[0]
        if labels is not None:
            labels = _as_labels(labels)
            if labels.shape != (n,):
                raise ValueError(f"`labels` must have shape (n={n},); got {tuple(labels.shape)}.")
        Sxx, Syx, Syy = _moments(X, Y)
        check_overflow(
            f"`X` is too large: X^T X / n overflows {dtype} (max |X| = {_max_abs(X):.3g}).", Sxx
        )
        check_overflow(
            f"`Y` is too large: Y^T Y / n overflows {dtype} (max |Y| = {_max_abs(Y):.3g}).", Syy
        )
        check_overflow(f"`X` and `Y` are too large: Y^T X / n overflows {dtype}.", Syx)
        return cls(Sxx, Syx, Syy, X, Y, labels)

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
        """``1/2 tr Syy - tr(Syx P^T) + 1/2 tr(P Sxx P^T)``; leading axes of ``P`` are kept.

        **Arguments:** `P` (..., d_out, d_in) end-to-end maps (finite when concrete).
        **Returns:** (...) the losses.
        """
        P = as_float(P, "P", float_dtype_of(P, self.Syx))
        if P.ndim < 2 or P.shape[-2:] != self.Syx.shape:
            raise ValueError(
                f"`P` must have shape (..., d_out, d_in)=(..., {self.d_out}, {self.d_in}); got "
                f"{tuple(P.shape)}."
            )
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


def _as_labels(labels):
    labels = as_array(labels, "labels")
    if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_:
        raise ValueError(f"`labels` must be integers (class indices); got dtype {labels.dtype}.")
    if is_concrete(labels) and labels.size and int(jnp.min(labels)) < 0:
        raise ValueError(f"`labels` must be non-negative class indices; got min {int(jnp.min(labels))}.")
    return labels


def _check_second_moment(name, S):
    """Concrete second moments are symmetric (to sqrt(eps)) with a non-negative diagonal."""
    if not is_concrete(S) or S.size == 0:
        return
    A = np.asarray(S, np.float64)
    scale = float(np.max(np.abs(A)))
    asym = float(np.max(np.abs(A - A.T)))
    if asym > np.sqrt(float(jnp.finfo(S.dtype).eps)) * scale:
        raise ValueError(
            f"`{name}` must be a symmetric second moment; got max |{name} - {name}^T| = {asym:.3g} "
            f"(max |{name}| = {scale:.3g})."
        )
    low = float(np.min(np.diag(A)))
    if low < 0:
        raise ValueError(
            f"`{name}` must be positive semi-definite; got a negative diagonal entry {low:.3g}."
        )


def _moments(X, Y):
    n = X.shape[0]
    return X.T @ X / n, Y.T @ X / n, Y.T @ Y / n


def _max_abs(x) -> float:
    return float(jnp.max(jnp.abs(x))) if is_concrete(x) else float("nan")


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
    - `whiten`: with `n`, transform the sampled inputs so ``X^T X / n = I`` exactly (needs
      ``n >= d_in``).
    - `dtype`: floating dtype of the task (default: the widest of `singular_values` and `noise`,
      else the default float).

    Raises ValueError, naming the argument, for sizes that are not positive integers, a bad
    `key`, non-finite or negative `singular_values`/`noise`, and values whose moments
    (``s^2``, ``noise^2``) overflow the dtype.
    """
    key = check_key(key)
    d_in, d_out = check_size("d_in", d_in), check_size("d_out", d_out)
    if n is not None:
        n = check_size("n", n)
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(singular_values, noise)
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
    noise = as_scalar("noise", noise, dtype, strict=False)
    if not isinstance(whiten, bool | np.bool_):
        raise ValueError(f"`whiten` must be True or False; got {whiten!r}.")
    if whiten and n is not None and n < d_in:
        raise ValueError(f"`n` must be >= d_in={d_in} to whiten the inputs (whiten=True); got n={n}.")
    big = float(jnp.finfo(dtype).max)
    if is_concrete(s) and r and float(jnp.max(s)) > np.sqrt(big / 64):
        raise ValueError(
            f"`singular_values` must be below sqrt(max_float / 64) = {np.sqrt(big / 64):.3g} so that "
            f"the moments stay finite in {dtype}; got max {float(jnp.max(s)):.3g}."
        )
    if is_concrete(noise) and float(noise) > np.sqrt(big / 64):
        raise ValueError(
            f"`noise` must be below sqrt(max_float / 64) = {np.sqrt(big / 64):.3g} so that the "
            f"moments stay finite in {dtype}; got {float(noise):.3g}."
        )
    ku, kv, kx, ke = jr.split(key, 4)
    U = random_orthonormal(ku, d_out, r, dtype)
    V = random_orthonormal(kv, d_in, r, dtype)
    W = (U * s[None, :]) @ V.T
    if n is None:
        eye_in, eye_out = jnp.eye(d_in, dtype=dtype), jnp.eye(d_out, dtype=dtype)
        return Task(eye_in, W, W @ W.T + noise**2 * eye_out)
    X = jr.normal(kx, (n, d_in), dtype)
    if whiten:
        X = _whiten(X)
    Y = X @ W.T + noise * jr.normal(ke, (n, d_out), dtype)
    Sxx, Syx, Syy = _moments(X, Y)
    check_overflow(
        f"`singular_values` and `noise` are too large for {dtype}: the sampled moments overflow.",
        Syx, Syy,
    )
    return Task(Sxx, Syx, Syy, X, Y)


def scalar(*, s, m2=1.0, dtype=None) -> Task:
    """The one-dimensional task ``Sxx = [[m2]]``, ``Syx = [[s m2]]``, ``Syy = [[s^2 m2]]``.

    Its loss is ``1/2 m2 (F - s)^2`` for the end-to-end scalar map ``F``.

    **Arguments:** `s` finite scalar target; `m2 > 0` finite input second moment (``s^2 m2`` must
    not overflow the dtype); `dtype` (default: the widest of `s` and `m2`).
    """
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(s, m2)
    s = as_scalar("s", s, dtype, positive=False)
    m2 = as_scalar("m2", m2, dtype)
    Syy = s * s * m2
    check_overflow(
        f"`s` = {_value(s)} and `m2` = {_value(m2)} are too large for {dtype}: s^2 m2 overflows.",
        s * m2, Syy,
    )
    return Task(m2.reshape(1, 1), (s * m2).reshape(1, 1), Syy.reshape(1, 1))


def _value(x) -> str:
    return f"{float(x):.3g}" if is_concrete(x) else "(traced)"


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

    **Arguments:** `key` PRNG key; `n >= k` samples; `d >= 1` input dimension; `k >= 2` classes;
    `separation >= 0` and `noise >= 0` finite; `dtype` floating (default: the widest of
    `separation` and `noise`, else the default float).
    """
    key = check_key(key)
    k = check_size("k", k, minimum=2)
    n = check_size("n", n, minimum=k)
    d = check_size("d", d)
    if targets not in ("onehot", "pm1"):
        raise ValueError(f"`targets` must be 'onehot' or 'pm1'; got {targets!r}.")
    dtype = check_float_dtype(dtype) if dtype is not None else float_dtype_of(separation, noise)
    separation = as_scalar("separation", separation, dtype, strict=False)
    noise = as_scalar("noise", noise, dtype, strict=False)
    km, kx = jr.split(key)
    means = jr.normal(km, (k, d), dtype)
    means = separation * means / jnp.linalg.norm(means, axis=1, keepdims=True)
    labels = jnp.arange(n) % k
    X = means[labels] + noise * jr.normal(kx, (n, d), dtype)
    check_overflow(
        f"`separation` and `noise` are too large for {dtype}: the samples' moments overflow.",
        X.T @ X / n,
    )
    Y = jax.nn.one_hot(labels, k, dtype=dtype)
    if targets == "pm1":
        Y = 2 * Y - 1
    return Task.from_data(X, Y, labels=labels)
