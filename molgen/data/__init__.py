"""Data sets, read in place: where they are (`paths`), QM9 with EDM's split (`qm9`), images
(`images`: MNIST, CIFAR-10, digits) and Gaussian mixtures with their exact model (`toy`)."""
