"""A copy of a weight-averaging run's checkpoint whose network is the weights as trained, not their average.

    python scripts/trained_weights.py RUN/checkpoints/step_010000.ckpt OUT.ckpt

A run with `weight_average_decay` writes the average as its checkpoints' network (what `stylenet
evaluate`, `stylize` and `export` read) and keeps the weights as trained beside it for resuming.
This writes the other one as the network, so that both can be scored the same way
(docs/multistyle.md compares them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from stylenet.checkpoint import NETWORK_PREFIX, read_lightning_checkpoint, write_atomically
from stylenet.errors import StylenetError
from stylenet.training.weight_average import take_from_checkpoint


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        checkpoint = read_lightning_checkpoint(source)
    except StylenetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if take_from_checkpoint(checkpoint, NETWORK_PREFIX) is None:
        print(f"error: {source} is not a checkpoint of a run that averages its weights", file=sys.stderr)
        return 2
    if target.exists():
        print(f"error: {target} exists; choose a new file", file=sys.stderr)
        return 2
    write_atomically(checkpoint, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
