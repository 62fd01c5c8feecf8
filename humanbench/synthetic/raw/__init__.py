"""Miniature raw datasets in the exact on-disk layouts of the real downloads, with synthetic content.

One module per dataset; each writes a small copy of the dataset as downloaded (file names,
zero-padding, key names, dtypes, pickle encodings and quirks), with images from the synthetic
world, and returns the ground truth it used so tests can check the converters round-trip.
"""
