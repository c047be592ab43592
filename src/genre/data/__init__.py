"""Data: schemas, the encoder, bundled datasets."""

from genre.data.datasets import DATASETS, Dataset, load
from genre.data.encoder import Encoder
from genre.data.schema import Feature, Schema

__all__ = ["DATASETS", "Dataset", "Encoder", "Feature", "Schema", "load"]
