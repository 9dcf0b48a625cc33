"""stylenet: train and run feed-forward neural style transfer networks.

`load_model(path)` returns a `Stylizer`; `stylizer.styles` lists the styles the model holds, and
`stylizer(images, style="wave")` or `style="starry=0.7,wave=0.3"` picks one or blends them.
"""

from stylenet.inference.model import Stylizer, load_model

__all__ = ["Stylizer", "load_model"]
