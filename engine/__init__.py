"""Training pipeline: data, augmentation, optimisation, loop, logging, checkpoints, validation."""
