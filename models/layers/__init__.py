"""Layer library: even-kernel padding, BlurPool, involution, octave and separable convs, factories.

One module per op family (timm style); everything is re-exported here.
"""
from .blur_pool import PAD_TYPES, BlurPool2d, MaxBlurPool2d, binomial_filter, conv_bn_relu_blur
from .create_conv import (
    CONV_KIND_TABLE,
    CONV_KINDS,
    DOWNSAMPLE_KINDS,
    SPATIAL_KINDS,
    ConvKind,
    conv_stride_for,
    create_conv,
    create_downsample,
    create_shortcut_pool,
)
from .involution import Involution2d, involution, involution_output_size, involution_unfold
from .octave import OctaveConv2d, OctaveConvBNAct
from .padding import (
    SYMPAD_ORDERS,
    SamePadConv2d,
    SymPadConv2d,
    SymPadStemConv2d,
    get_padding,
    get_same_padding,
    pad_same,
    symmetric_pad,
    symmetric_pad_sizes,
)
from .separable import DepthwiseSeparableConv2d

__all__ = [
    "PAD_TYPES", "BlurPool2d", "MaxBlurPool2d", "binomial_filter", "conv_bn_relu_blur",
    "CONV_KIND_TABLE", "CONV_KINDS", "DOWNSAMPLE_KINDS", "SPATIAL_KINDS", "ConvKind", "conv_stride_for",
    "create_conv", "create_downsample", "create_shortcut_pool",
    "Involution2d", "involution", "involution_output_size", "involution_unfold",
    "OctaveConv2d", "OctaveConvBNAct",
    "SYMPAD_ORDERS", "SamePadConv2d", "SymPadConv2d", "SymPadStemConv2d", "get_padding", "get_same_padding", "pad_same",
    "symmetric_pad", "symmetric_pad_sizes",
    "DepthwiseSeparableConv2d",
]
