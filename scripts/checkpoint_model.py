"""The model (.pt) of one of a run's checkpoints, carrying the run's loss definition.

    python scripts/checkpoint_model.py RUN_DIR/checkpoints/step_001000.ckpt OUT.pt [CONFIG]

`stylenet evaluate` scores a model on the loss stored in its metadata. Checkpoints written
before Lightning checkpoints carried it lack that loss, and would be scored on the defaults;
this reads it from the run's own config (CONFIG, by default RUN_DIR/.hydra/config.yaml; Hydra's
folder when `paths.output_dir` sent the run elsewhere) instead, so that
checkpoints of a run can be compared with each other and with other models on equal terms.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from stylenet.checkpoint import load_lightning_checkpoint, save_inference_checkpoint


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    checkpoint, out = Path(argv[0]), Path(argv[1])
    network, metadata = load_lightning_checkpoint(checkpoint)
    if "loss" not in metadata:
        config = OmegaConf.load(argv[2] if len(argv) == 3 else checkpoint.parent.parent / ".hydra" / "config.yaml")
        metadata["loss"] = OmegaConf.to_container(config.loss, resolve=True)  # resolves ${style.*} weights only
    print(save_inference_checkpoint(out, network, metadata))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
