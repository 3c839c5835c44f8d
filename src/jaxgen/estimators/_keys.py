"""scikit-learn's ``random_state`` turned into an explicit JAX key: one rule for every estimator."""
import jax
import numpy as np
from sklearn.utils import check_random_state

from jaxgen.keys import key_bytes


def key_from(random_state, salt: int = 0) -> jax.Array:
    """A JAX key from an int seed (used as is: deterministic), a ``RandomState``, or None (NumPy's
    global RNG). ``salt`` separates the streams of one estimator (fit, sample, ...): the root key
    ``key(seed)`` is only ever the parent of this indexed family (see :mod:`jaxgen.keys`)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    return jax.random.fold_in(jax.random.key(seed), salt)


def numpy_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded by the data of one JAX key (for draws made on the host); the key
    is consumed by this call and must not be used for anything else."""
    return np.random.default_rng(np.frombuffer(key_bytes(key), dtype=np.uint32))
