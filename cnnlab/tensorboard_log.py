"""TensorBoard event files written without importing TensorFlow.

torch's SummaryWriter reaches TensorFlow through tensorboard's `compat.tf`, which imports TensorFlow
whenever it is installed (cnnlab's interop extra installs it) although writing events needs none of
it: on the project's loaded 2-core machine importing the writer took 59 s that way and 21 s without
(torch included). tensorboard ships a marker module, `tensorboard.compat.notf`, that makes it use its
own TensorFlow stub; `summary_writer` sets that marker first. A process that already loaded
TensorFlow keeps it.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


def summary_writer(logdir: str | Path) -> "SummaryWriter":
    """torch's SummaryWriter writing into `logdir`, made without importing TensorFlow."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(logdir))
