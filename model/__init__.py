"""Models: text preprocessing, taxonomy, profile models, data sets, training.

Importing this package must not import torch; the torch-backed modules are imported
where they are used.
"""
