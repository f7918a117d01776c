r"""Closed-form Gaussian averages of two-layer (committee) networks, for the teacher-student ODEs.

The local fields of a student ``lambda_k = w_k.x / sqrt(N)`` (k < K) and of a teacher
``nu_m = w*_m.x / sqrt(N)`` (m < M), ``x ~ N(0, I_N)``, are jointly Gaussian with covariance

    Omega = [[Q, R], [R^T, T]],   Q = W W^T / N,  R = W W*^T / N,  T = W* W*^T / N,

indexed by ``p < P = K + M`` (students first). With ``C`` the covariance of the fields an average
involves (``C_ab = Omega[a, b]``) and ``g(x) = erf(x / sqrt 2)``, ``g'(x) = sqrt(2/pi) e^{-x^2/2}``:

    I2(a,b)     = E[g(a) g(b)]       = (2/pi) arcsin(C12 / sqrt((1 + C11)(1 + C22)))
    I3(a,b,c)   = E[g'(a) b g(c)]    = (2/pi) (C23 (1 + C11) - C12 C13)
                                       / ((1 + C11) sqrt((1 + C11)(1 + C33) - C13^2))
    I4(a,b,c,d) = E[g'(a) g'(b) g(c) g(d)] = (4/pi^2) arcsin(L0 / sqrt(L1 L2)) / sqrt(L4)
    J2(a,b)     = E[g'(a) g'(b)]     = (2/pi) (1 + C11 + C22 + C11 C22 - C12^2)^{-1/2}

with ``L4 = (1 + C11)(1 + C22) - C12^2``, ``L0 = L4 C34 - C23 C24 (1 + C11) - C13 C14 (1 + C22) +
C12 C13 C24 + C12 C14 C23``, ``L1 = L4 (1 + C33) - C23^2 (1 + C11) - C13^2 (1 + C22) + 2 C12 C13
C23`` (the determinant of ``1 + C`` on fields 1, 2, 3) and ``L2`` as ``L1`` with 3 -> 4.
The linear activation ``g(x) = x`` gives ``I2 = C12``, ``I3 = C23``, ``I4 = C34``, ``J2 = 1``;
ReLU closes only for ``I2 = sqrt(C11 C22) / (2 pi) (sin th + (pi - th) cos th)``,
``cos th = C12 / sqrt(C11 C22)`` (the arc-cosine kernel).

The ``*_tensor`` builders evaluate every average the ODEs need at once by broadcasting (no loop
over K or M).

References: Saad & Solla (1995), Phys. Rev. E 52:4225; Biehl & Schwarze (1995), J. Phys. A
28:643; Goldt, Advani, Saxe, Krzakala & Zdeborova (2019), arXiv 1906.08632; Cho & Saul (2009),
"Kernel methods for deep learning" (the ReLU kernel).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "ACTIVATIONS",
    "ODE_ACTIVATIONS",
    "field_covariance",
    "generalisation_error",
    "i2",
    "i3",
    "i4",
    "j2",
    "i2_matrix",
    "i3_tensor",
    "i4_quadratic_form",
    "i4_tensor",
    "j2_matrix",
]

#: Activations with a closed-form generalisation error (I2).
ACTIVATIONS = ("erf", "linear", "relu")
#: Activations whose ODEs close (I3, I4 and J2 are elementary).
ODE_ACTIVATIONS = ("erf", "linear")

_TWO_OVER_PI = 2.0 / jnp.pi


def _arcsin(x):
    """``arcsin`` clipped to its domain (rounding can push a correlation past +-1)."""
    return jnp.arcsin(jnp.clip(x, -1.0, 1.0))


def field_covariance(
    Q: Float[Array, "K K"], R: Float[Array, "K M"], T: Float[Array, "M M"]
) -> Float[Array, "P P"]:
    """``Omega = [[Q, R], [R^T, T]]``, the (K+M, K+M) covariance of student and teacher fields."""
    return jnp.concatenate(
        [jnp.concatenate([Q, R], axis=-1), jnp.concatenate([jnp.swapaxes(R, -1, -2), T], axis=-1)],
        axis=-2,
    )


def i2(c11, c22, c12, activation: str = "erf"):
    """``E[g(a) g(b)]`` for fields of variances ``c11, c22`` and covariance ``c12`` (broadcast)."""
    if activation == "erf":
        return _TWO_OVER_PI * _arcsin(c12 / jnp.sqrt((1 + c11) * (1 + c22)))
    if activation == "linear":
        return c12 * jnp.ones_like(c11 + c22)
    if activation == "relu":
        norm = jnp.sqrt(c11 * c22)
        positive = norm > 0
        cos = jnp.clip(c12 / jnp.where(positive, norm, 1.0), -1.0, 1.0)
        theta = jnp.arccos(cos)
        value = norm / (2 * jnp.pi) * (jnp.sqrt(1 - cos**2) + (jnp.pi - theta) * cos)
        return jnp.where(positive, value, 0.0)
    raise ValueError(f"`activation` must be one of {ACTIVATIONS}; got {activation!r}.")


def i3(c11, c12, c13, c23, c33, activation: str = "erf"):
    """``E[g'(a) b g(c)]`` (``b`` the field itself) from the covariance entries (broadcast)."""
    if activation == "erf":
        a = 1 + c11
        return _TWO_OVER_PI * (c23 * a - c12 * c13) / (a * jnp.sqrt(a * (1 + c33) - c13**2))
    if activation == "linear":
        return c23 * jnp.ones_like(c11 + c12 + c13 + c33)
    raise ValueError(
        f"`activation` must be one of {ODE_ACTIVATIONS} for I3 (ReLU's ODE needs I4, which is not "
        f"elementary); got {activation!r}."
    )


def i4(c11, c12, c13, c14, c22, c23, c24, c33, c34, c44, activation: str = "erf"):
    """``E[g'(a) g'(b) g(c) g(d)]`` from the covariance entries (broadcast)."""
    if activation == "erf":
        a, b = 1 + c11, 1 + c22
        l4 = a * b - c12**2
        l0 = l4 * c34 - c23 * c24 * a - c13 * c14 * b + c12 * c13 * c24 + c12 * c14 * c23
        l1 = l4 * (1 + c33) - c23**2 * a - c13**2 * b + 2 * c12 * c13 * c23
        l2 = l4 * (1 + c44) - c24**2 * a - c14**2 * b + 2 * c12 * c14 * c24
        return (4 / jnp.pi**2) * _arcsin(l0 / jnp.sqrt(l1 * l2)) / jnp.sqrt(l4)
    if activation == "linear":
        return c34 * jnp.ones_like(c11 + c12 + c13 + c14 + c22 + c23 + c24 + c33 + c44)
    raise ValueError(
        f"`activation` must be one of {ODE_ACTIVATIONS} for I4 (not elementary for ReLU); "
        f"got {activation!r}."
    )


def j2(c11, c22, c12, activation: str = "erf"):
    """``E[g'(a) g'(b)]`` from the covariance entries (broadcast)."""
    if activation == "erf":
        return _TWO_OVER_PI / jnp.sqrt(1 + c11 + c22 + c11 * c22 - c12**2)
    if activation == "linear":
        return jnp.ones_like(c11 + c22 + c12)
    raise ValueError(f"`activation` must be one of {ODE_ACTIVATIONS} for J2; got {activation!r}.")


def _diag(omega):
    return jnp.diagonal(omega, axis1=-2, axis2=-1)


def i2_matrix(omega: Float[Array, "P P"], activation: str = "erf") -> Float[Array, "P P"]:
    """``I2(p, q)`` for every pair of fields: (P, P)."""
    d = _diag(omega)
    return i2(d[:, None], d[None, :], omega, activation)


def j2_matrix(omega: Float[Array, "P P"], K: int, activation: str = "erf") -> Float[Array, "K K"]:
    """``J2(i, k)`` for every pair of student fields: (K, K)."""
    d = _diag(omega)[:K]
    return j2(d[:, None], d[None, :], omega[:K, :K], activation)


def i3_tensor(omega: Float[Array, "P P"], K: int, activation: str = "erf") -> Float[Array, "K P P"]:
    """``I3(i, b, c)`` for student ``i`` (axis 0) and every field ``b`` (axis 1), ``c`` (axis 2)."""
    d = _diag(omega)
    s = omega[:K]  # (K, P): covariances of the student fields with every field
    return i3(
        d[:K, None, None],  # C11 = Omega[i, i]
        s[:, :, None],  # C12 = Omega[i, b]
        s[:, None, :],  # C13 = Omega[i, c]
        omega[None, :, :],  # C23 = Omega[b, c]
        d[None, None, :],  # C33 = Omega[c, c]
        activation,
    )


def i4_tensor(omega: Float[Array, "P P"], K: int, activation: str = "erf") -> Float[Array, "K K P P"]:
    """``I4(i, k, c, d)`` for students ``i, k`` (axes 0, 1) and every field ``c, d`` (axes 2, 3)."""
    d = _diag(omega)
    s = omega[:K]  # (K, P)
    return i4(
        d[:K, None, None, None],  # C11 = Omega[i, i]
        omega[:K, :K, None, None],  # C12 = Omega[i, k]
        s[:, None, :, None],  # C13 = Omega[i, c]
        s[:, None, None, :],  # C14 = Omega[i, d]
        d[None, :K, None, None],  # C22 = Omega[k, k]
        s[None, :, :, None],  # C23 = Omega[k, c]
        s[None, :, None, :],  # C24 = Omega[k, d]
        d[None, None, :, None],  # C33 = Omega[c, c]
        omega[None, None, :, :],  # C34 = Omega[c, d]
        d[None, None, None, :],  # C44 = Omega[d, d]
        activation,
    )


def i4_quadratic_form(
    omega: Float[Array, "P P"], v: Float[Array, " K"], v_star: Float[Array, " M"],
    activation: str = "erf",
) -> Float[Array, "K K"]:
    """``sum_{c,d} u_c u_d I4(i, k, c, d)`` with ``u = (v, -v*)``, for students ``i, k``: the
    contraction the ``lr^2`` term of the ODE needs, without the ``(K, K, P, P)`` tensor.

    ``I4`` is symmetric under ``i <-> k`` and ``c <-> d``: only the pairs ``i <= k`` are evaluated,
    and the fields in three blocks, ``v^T S v - 2 v^T X v* + v*^T S* v*`` (student-student,
    student-teacher, teacher-teacher), which skips the teacher-student block (about 2.7x fewer
    entries than ``i4_tensor`` when ``K = M``). The blocks are reduced alike, so a student equal
    to the teacher gives exactly 0, as the ODE's fixed point needs (``I4`` is not Lipschitz at
    perfectly correlated fields: rounding there would grow to ~1e-11).
    """
    K = v.shape[0]
    i, k = np.triu_indices(K)
    diag = _diag(omega)
    s = omega[:K]
    students, teachers = np.arange(K), np.arange(K, omega.shape[0])

    def block(c, d):
        return i4(
            diag[i][:, None, None],  # C11 = Omega[i, i]
            omega[i, k][:, None, None],  # C12 = Omega[i, k]
            s[i][:, c][:, :, None],  # C13 = Omega[i, c]
            s[i][:, d][:, None, :],  # C14 = Omega[i, d]
            diag[k][:, None, None],  # C22 = Omega[k, k]
            s[k][:, c][:, :, None],  # C23 = Omega[k, c]
            s[k][:, d][:, None, :],  # C24 = Omega[k, d]
            diag[c][None, :, None],  # C33 = Omega[c, c]
            omega[c][:, d][None],  # C34 = Omega[c, d]
            diag[d][None, None, :],  # C44 = Omega[d, d]
            activation,
        )

    def form(c, d, a, b):
        return jnp.einsum("pcd,c,d->p", block(c, d), a, b)

    pairs = (
        form(students, students, v, v)
        - 2 * form(students, teachers, v, v_star)
        + form(teachers, teachers, v_star, v_star)
    )
    return jnp.zeros((K, K), omega.dtype).at[i, k].set(pairs).at[k, i].set(pairs)


def generalisation_error(Q, R, T, v, v_star, activation: str = "erf"):
    """``1/2 u^T I2(Omega) u`` with ``u = (v, -v*)``: ``eps_g = 1/2 E[(phi - phi*)^2]`` (no checks)."""
    omega = field_covariance(Q, R, T)
    u = jnp.concatenate([v, -v_star])
    return 0.5 * u @ i2_matrix(omega, activation) @ u
