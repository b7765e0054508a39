"""Model families; importing this package registers them (``import models`` does it)."""
from . import bottleneck_cifar, mobilenet_cifar, octresnet, resnet_cifar, vgg_cifar  # noqa: F401
