"""Hard-example selection: a small proxy network, trained alongside the model, picks the part of each
batch the model trains on (airbench96's data filtering: the model then does half the work per epoch).

Every batch the proxy scores each image by its loss; the `hard_fraction` with the highest loss go to the
model. Every `proxy_every`-th batch the proxy also trains on those images, with the run's optimizer and
schedule; the other batches it only scores (without gradients). Its weights, optimizer and gradient
scaler go into the checkpoint, so a resumed run picks the same images an uninterrupted one does.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .. import distributed
from ..devices import autocast, grad_scaler
from ..errors import CnnlabError
from ..models import Classifier
from ..models.layout import to_channels_last
from .config import TrainConfig
from .optim import build_optimizer, set_lr

if TYPE_CHECKING:
    from ..data.base import Dataset


def data_initialize(model: Classifier, train_set: "Dataset", seed: int) -> None:
    """Run the model family's data-dependent initialization (airbench: its whitening conv) on up to the
    number of seeded training images it asks for."""
    from ..data.arrays import ImageArrays
    from ..models import data_init
    init = data_init(model.name)
    if init is None:
        return
    if not isinstance(train_set, ImageArrays):
        raise CnnlabError(f"Model '{model.name}' initializes from the training data ({init.description}), which "
                          "needs in-memory training data (arrays, not an image folder streamed from disk); "
                          "pass data_init=False to skip it.")
    sel = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))[:init.images]
    init.fn(model, train_set.floats(sel).to(model.device))


def build_proxy(model: Classifier, cfg: TrainConfig, train_set: "Dataset") -> Classifier:
    """The proxy: the registered model rebuilt with `cfg.proxy_args` over its own arguments (seeded, and
    data-initialized like the model), or, without proxy_args, a copy of the model as it starts."""
    if not cfg.proxy_args:
        return copy.deepcopy(model)
    from ..models import create_model, get_entry
    try:
        get_entry(model.name)
    except CnnlabError:
        raise CnnlabError(f"--proxy-arg needs a registered model to rebuild, and '{model.name}' is not one; leave "
                          "--proxy-arg out to select with a copy of the model.") from None
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed + 1)
        proxy = create_model(model.name, num_classes=model.num_classes, device="cpu",
                             **{**cfg.model_kwargs, **cfg.proxy_args})
    proxy.to(model.device)
    if cfg.data_init and not (cfg.weights or cfg.pretrained):
        data_initialize(proxy, train_set, cfg.seed)
    return proxy


class HardSelection:
    """The proxy and its optimizer; `pick(x, y, step)` returns the part of the batch the model trains on."""

    def __init__(self, proxy: Classifier, cfg: TrainConfig, ctx: distributed.DistContext, precision: str) -> None:
        self.proxy, self.cfg, self.precision = proxy, cfg, precision
        if cfg.channels_last:
            to_channels_last(proxy)
        self.opt = build_optimizer(proxy.net, cfg)
        self.scaler = grad_scaler(proxy.device, precision)
        self.net = distributed.wrap(proxy, ctx, proxy.device)
        proxy.train()  # it only ever trains: BatchNorm on batch statistics, also when it merely scores

    def pick(self, x: torch.Tensor, y: torch.Tensor, step: int, steps_per_epoch: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The `hard_fraction` of (x, y) with the highest proxy loss (at least one image), in batch order;
        on every `proxy_every`-th step the proxy first learns from them."""
        cfg = self.cfg
        k = max(1, round(cfg.hard_fraction * len(y)))
        learn = step % cfg.proxy_every == 0
        with torch.set_grad_enabled(learn), autocast(self.proxy.device, self.precision):
            logits = self.net(x)
        losses = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing, reduction="none")
        idx = losses.detach().topk(k).indices.sort().values
        if learn:
            set_lr(self.opt, cfg, step, steps_per_epoch)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(losses[idx].mean()).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        sub = x[idx]
        if cfg.channels_last:
            sub = sub.contiguous(memory_format=torch.channels_last)
        return sub, y[idx]

    def state_dict(self) -> dict:
        return {"state_dict": self.proxy.net.state_dict(), "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None}

    def load_state_dict(self, state: dict) -> None:
        self.proxy.net.load_state_dict(state["state_dict"])
        self.opt.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
