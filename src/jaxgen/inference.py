"""NumPyro inference helpers shared by the Bayesian models (Student-t PCA, Bayesian GMM)."""
from __future__ import annotations

import jax

from jaxgen.validation import check_positive_int

__all__ = ["run_nuts"]


def run_nuts(model, init_values: dict | None, key: jax.Array, *model_args, num_warmup: int, num_samples: int,
             num_chains: int = 1, progress_bar: bool = False, init_params: dict | None = None):
    """Run NUTS on ``model(*model_args)``.

    Starting points: ``init_values`` (a dict of constrained values, e.g. an EM or VB estimate) starts
    every chain there: warm-up then adapts around the posterior mode instead of wandering in from
    the prior. ``init_params`` (unconstrained values with a leading ``num_chains`` axis when
    ``num_chains > 1``, e.g. over-dispersed points) starts each chain at its own point and takes
    precedence. With neither, NumPyro's ``init_to_uniform``. Chains run in parallel when there are
    enough devices, else one after another. Returns the NumPyro ``MCMC`` object
    (``get_samples()``, ``arviz.from_numpyro``).
    """
    from numpyro.infer import MCMC, NUTS, init_to_uniform, init_to_value

    num_chains = check_positive_int(num_chains, "num_chains")
    strategy = init_to_value(values=init_values) if init_values is not None else init_to_uniform
    mcmc = MCMC(
        NUTS(model, init_strategy=strategy),
        num_warmup=check_positive_int(num_warmup, "num_warmup"),
        num_samples=check_positive_int(num_samples, "num_samples"),
        num_chains=num_chains,
        chain_method="sequential" if num_chains > jax.local_device_count() else "parallel",
        progress_bar=progress_bar,
    )
    mcmc.run(key, *model_args, init_params=init_params)
    return mcmc
