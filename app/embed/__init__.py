"""Embedders: turn generator samples into rows whose distances find near-duplicates.

`ClipEmbedder` (app.embed.clip) and `EfficientNetEmbedder` (app.embed.efficientnet) are imported
from their modules, not here, because their libraries take seconds to import.
"""

from app.embed.base import Embedder
from app.embed.factory import EMBEDDER_KINDS, make_embedder, resolve_weights
from app.embed.pixels import PixelEmbedder

__all__ = ["EMBEDDER_KINDS", "Embedder", "PixelEmbedder", "make_embedder", "resolve_weights"]
