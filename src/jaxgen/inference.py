"""NumPyro inference helpers shared by the Bayesian models (Student-t PCA, Bayesian GMM)."""
from __future__ import annotations

import jax

from jaxgen.validation import check_positive_int

__all__ = ["run_nuts"]


def run_nuts(model, init_values: dict, key: jax.Array, *model_args, num_warmup: int, num_samples: int,
             num_chains: int = 1, progress_bar: bool = False):
    """Run NUTS on ``model(*model_args)`` started at ``init_values`` (e.g. an EM or VB estimate).

    Starting at a good point estimate lets warm-up adapt around the posterior mode instead of
    wandering in from the prior. Chains run in parallel when there are enough devices, else one
    after another. Returns the NumPyro ``MCMC`` object (``get_samples()``, ``arviz.from_numpyro``).
    """
    from numpyro.infer import MCMC, NUTS, init_to_value

    num_chains = check_positive_int(num_chains, "num_chains")
    mcmc = MCMC(
        NUTS(model, init_strategy=init_to_value(values=init_values)),
        num_warmup=check_positive_int(num_warmup, "num_warmup"),
        num_samples=check_positive_int(num_samples, "num_samples"),
        num_chains=num_chains,
        chain_method="sequential" if num_chains > jax.local_device_count() else "parallel",
        progress_bar=progress_bar,
    )
    mcmc.run(key, *model_args)
    return mcmc
