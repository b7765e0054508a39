"""Model families; importing this package registers them (``import models`` does it)."""
from . import imagenet_densenet, imagenet_octresnet, imagenet_rednet, imagenet_resnet  # noqa: F401  (ImageNet, 224x224)
from . import bottleneck_cifar, mobilenet_cifar, octresnet, resnet_cifar, vgg_cifar  # noqa: F401
