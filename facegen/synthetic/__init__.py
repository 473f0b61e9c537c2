"""Balanced synthetic face data sets from a trained generator (stage `generate`).

``plan`` decides which faces to make (rows of requested attributes, seeds, sources), ``quality`` drops
faces an attribute classifier disagrees with, ``datacard`` describes a finished data set, ``writer``
generates and writes one data set resumably and ``reader`` reads it back (``facegen.datasets`` re-exports
it); ``run`` ties them together for every configured data set.
"""
