"""facegen: attribute-conditional GAN faces and how much they help face recognition."""

__version__ = "0.1.0"
