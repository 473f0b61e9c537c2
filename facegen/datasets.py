"""The consumers' entry point to the synthetic face data sets (``from facegen.datasets import SyntheticFaces``):
the reader lives beside its writer, in :mod:`facegen.synthetic.reader`."""

from facegen.synthetic.reader import SyntheticFaces, conditioned_attributes, fetch_dataset, load_manifest, read_manifest

__all__ = ["SyntheticFaces", "load_manifest", "conditioned_attributes", "read_manifest", "fetch_dataset"]
