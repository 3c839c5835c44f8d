"""GAN mode collapse on the 2-D grid (VEEGAN / PacGAN protocol); the body is in ``_gan2d.py``.

See ``experiments/_gan2d.py`` for the protocol, the published figures, the default (best)
configuration and the sweep over objectives and packing (``sweep=true``).
"""
from jaxgen import runner

_g = runner.sibling_module(__file__, "_gan2d")
DESCRIPTION = ("GAN mode collapse on the 5 x 5 grid of 25 Gaussians (std 0.05): non-saturating GAN + R1 + EMA "
               "generator over 5 seeds disjoint from the selection seed (sweep=true: every objective with and without "
               "PacGAN packing, WGAN-GP as published): modes captured, high-quality %, reverse KL, beside PacGAN "
               "Table 1.")
QUICK = _g.QUICK
CHECKS = _g.CHECKS
check_config = _g.check_config


def get_config():
    return _g.get_config("grid")


def run(config, run):
    return _g.run(config, run, "grid")
