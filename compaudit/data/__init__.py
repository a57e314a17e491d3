"""Datasets and protected attributes: loaders, lookup, preprocessing."""
