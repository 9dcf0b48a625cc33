"""How much a model's video flickers: warping errors on real clips (estimated flow) and exact pairs (known flow)."""
