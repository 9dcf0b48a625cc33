"""Train a style-transfer network: python train.py style=starry [experiment=quickstart] [key=value ...]"""

import sys

import hydra
from omegaconf import DictConfig

from stylenet.errors import StylenetError
from stylenet.hardware import keep_freed_memory
from stylenet.train import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    keep_freed_memory()
    try:
        train(cfg)
    except StylenetError as error:
        # One line a person can act on, not a traceback from deep inside a library.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
