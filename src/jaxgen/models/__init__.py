"""Pure-function generative models: one module per family (parameters are explicit pytrees)."""
