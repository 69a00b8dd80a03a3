"""Offline training and evaluation: events -> samples -> the layered model -> a checkpoint and its metrics."""
