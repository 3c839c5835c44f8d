"""Shared Flax (linen) building blocks: MLP, convolutional encoder, transposed-convolution decoder, and
convolution layers whose gradients XLA:CPU runs fast inside loops (:mod:`jaxgen.nn.convolution`)."""
from jaxgen.nn.conv import ConvDecoder, ConvEncoder
from jaxgen.nn.convolution import Conv, ConvTranspose, conv_general_dilated
from jaxgen.nn.mlp import ACTIVATIONS, MLP, get_activation

__all__ = ["ACTIVATIONS", "MLP", "Conv", "ConvDecoder", "ConvEncoder", "ConvTranspose", "conv_general_dilated",
           "get_activation"]
