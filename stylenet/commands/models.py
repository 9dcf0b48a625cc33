"""`stylenet models`: the list of shipped styles."""

from __future__ import annotations


def run() -> int:
    """`stylenet models`: the shipped styles, a line of each one's card, and where the file is."""
    from stylenet.pretrained import BUNDLE, shipped
    from stylenet.pretrained.card import one_line

    bundle = shipped()
    width = max(len(name) for name in bundle.styles)
    blend = f"{bundle.styles[0]}=0.7,{bundle.styles[1]}=0.3" if len(bundle.styles) > 1 else bundle.styles[0]
    print(f"shipped styles (stylenet stylize NAME photo.jpg; blends as {blend}):")
    for name in bundle.styles:
        print(f"  {name:<{width}}  {one_line(bundle.card, name)}")
    size = bundle.path.stat().st_size / 1e6
    print(f"all of them: {BUNDLE} (--style NAME); file: {bundle.path} ({size:.1f} MB)")
    return 0
