# %% [markdown]
# # Classroom explorer: exact learning dynamics under your fingers
#
# Three small models whose gradient-flow training is known **exactly** (`linsolve.exact`). Each
# explorer below has sliders over its parameters; every move redraws the closed-form solution at
# once. The button *simulate (gradient flow)* trains the full weight matrices numerically at the
# current setting (`linsolve.simulate.gradient_flow`) and overlays the result as circles: they sit
# on the exact curves.
#
# No Python in the classroom? `linsolve explore NAME --out NAME.html` writes the same explorer as
# one self-contained web page (every slider setting precomputed, no network needed).

# %%
import os

import jax

jax.config.update("jax_enable_x64", True)  # the simulations in float64

from linsolve import explore  # noqa: E402

SMOKE = os.environ.get("LINSOLVE_SMOKE") == "1"  # small grids, every callback run once (CI)
for name, title in explore.list_explorers().items():
    print(f"{name:12s} {title}")

# %% [markdown]
# ## 1. Stage-like learning of the Saxe modes (`saxe-stages`)
#
# A deep linear network with `L` weight matrices learns a teacher with singular values
# 3, 2, 1, 0.5 from a small init `u0` on every mode. Each mode strength follows
# `du/dt = L [u^(2-2/L) (s - u) - gamma u]` (Saxe, McClelland & Ganguli 2014, arXiv:1312.6120).
#
# *Try:* make `u0` smaller (longer plateaus, sharper stages); raise the depth (the plateau grows
# like `u0^-(L-2)/L`); add weight decay at depth 3 and a small `u0`: the weakest mode is never
# learned (Ziyin, Li & Meng 2022, arXiv:2202.04777).

# %%
stages = explore.explorer_widget("saxe-stages", smoke=SMOKE)
stages

# %% [markdown]
# ## 2. Lazy vs rich learning, tuned by the balance lambda (`lazy-rich`)
#
# A two-layer linear net from a random init with `W2^T W2 - W1 W1^T = lambda I`. The exact
# Riccati solution gives the loss and the neural tangent kernel at all times (Dominé et al. 2025,
# arXiv:2409.14623).
#
# *Try:* lambda = 0 with a small init (rich: sigmoidal loss, the NTK changes by orders of
# magnitude), then |lambda| = 10 (lazy: exponential loss, the NTK barely moves). The sign of
# lambda decides which representation stays put.

# %%
lazy_rich = explore.explorer_widget("lazy-rich", smoke=SMOKE)
lazy_rich

# %% [markdown]
# ## 3. The width x output-scale phase diagram (`width-phase`)
#
# The width-d network `f(x) = kappa (u . w) x` (Xu & Ziyin 2025, arXiv:2401.07085) with
# `kappa = d^-c` and init variance `d^-a`. The heat map is the exact relative NTK change; the white
# line is the phase boundary `r = 1`, with `r ~ d^(c + a - 1)`.
#
# *Try:* move the init exponent `a`: the boundary moves to `c = 1 - a`. The learning-rate ratio
# shifts the boundary only by a constant factor in `r`. *Simulate* trains every width of the three
# cuts at once (about ten seconds).

# %%
phase = explore.explorer_widget("width-phase", smoke=SMOKE)
phase

# %% [markdown]
# In smoke mode (`LINSOLVE_SMOKE=1`) every callback runs once, so that the notebook's code paths are
# exercised headless.

# %%
if SMOKE:
    for box in (stages, lazy_rich, phase):
        box.redraw()
    for box in (stages, lazy_rich):
        simulation = box.simulate()
        assert float(simulation["diverged"]) == 0
    print("smoke run: redraw and simulate callbacks ran")

# %% [markdown]
# ## Snapshots
#
# A static page (this notebook rendered in the documentation, or opened without a running kernel)
# cannot move the sliders. The explorers' figures as last drawn, at the default settings (in smoke
# mode: after the callbacks above, with the simulation overlaid):

# %%
from IPython.display import display  # noqa: E402

for box in (stages, lazy_rich, phase):
    display(box.image)
