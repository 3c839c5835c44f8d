"""Shared Flax (linen) building blocks: MLP, convolutional encoder, transposed-convolution decoder."""
from jaxgen.nn.conv import ConvDecoder, ConvEncoder
from jaxgen.nn.mlp import ACTIVATIONS, MLP, get_activation

__all__ = ["ACTIVATIONS", "MLP", "ConvDecoder", "ConvEncoder", "get_activation"]
