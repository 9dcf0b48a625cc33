"""stylenet: train and run feed-forward neural style transfer networks."""

from stylenet.inference.model import Stylizer, load_model

__all__ = ["Stylizer", "load_model"]
