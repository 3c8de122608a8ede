"""semfi-batch: fill gaps in video with generated frames, in batch, resumably."""

__version__ = "0.1.0"
