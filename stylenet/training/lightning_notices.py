"""Lightning's notices that tell a user of this project nothing, dropped while a run's entry point runs."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

# Notices every run printed that tell a user nothing: the VGG of the loss is frozen in eval mode on purpose,
# the worker count is data.num_workers as chosen, the deprecation is inside Lightning, the model summary's
# size estimate is not what anyone reads it for, the tips advertise services, and a resume that sets no
# time budget leaves out the budget's Timer on purpose.
_NOISE_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode at the start of training",
    r".* does not have many workers",
    r"This DataLoader will create \d+ worker processes",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Precision \S+ is not supported by the model summary",
    r"Be aware that when using `ckpt_path`, .*Please add the following callbacks: \['Timer'\]",
)
_NOISE_LOGS = ("💡 Tip:", "TPU available: False")


@contextlib.contextmanager
def quiet_lightning_notices() -> Iterator[None]:
    """Drops Lightning's notices that say nothing to a user of this project while the block runs.

    For entry points only (it changes process-wide warning filters); what matters still shows.
    """

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_NOISE_LOGS)

    lightning_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    with warnings.catch_warnings():
        for message in _NOISE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        lightning_log.addFilter(keep)
        try:
            yield
        finally:
            lightning_log.removeFilter(keep)
