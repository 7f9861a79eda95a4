"""Exports that load without genlab, for families with no transformers class: plain PyTorch, or diffusers.

``torch_export`` writes ``model.safetensors`` (the generating network's weights), ``config.json`` (what to build it
with) and ``modeling.py``: the network's own class and a sampler (``standalone.py``), as source, importing only
``torch`` and ``safetensors``::

    import sys; sys.path.insert(0, "OUT")
    import modeling
    net = modeling.load("OUT")
    images = modeling.sample(net, 16, seed=0)   # uint8 (16, C, H, W)

``diffusers_export`` writes a diffusers pipeline folder: the EMA UNet and a DDIM scheduler with genlab's beta
schedule; an unconditional model loads as a plain ``DDPMPipeline``, a class-conditional one as the
``GenlabClassPipeline`` shipped in the folder (``trust_remote_code=True``), which takes class labels and guidance.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from genlab.files import atomic_write_bytes
from genlab.models import standalone
from genlab.version import genlab_version

TORCH_EXPORT_USAGE = ("import sys\n\nsys.path.insert(0, '{path}')\n"  # a torch export's README snippet ({path})
                      "import modeling  # the network's code: PyTorch only\n\n"
                      "net = modeling.load('{path}')\nimages = modeling.sample(net, 16, seed=0)  # uint8 (16, C, H, W)")

MODELING = '''"""{title}

Exported by genlab {version}. Needs only PyTorch and safetensors:

    import sys; sys.path.insert(0, "THIS_FOLDER")
    import modeling
    net = modeling.load("THIS_FOLDER")
    images = modeling.sample(net, 16, seed=0)  # uint8 (16, C, H, W); the same seed gives genlab's images
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

LOG_2PI = math.log(2 * math.pi)

{classes}

{helpers}

{sampler}


def load(folder=Path(__file__).parent):
    """The network, with its weights, in eval mode."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    net = {net}(**config["init"])
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    return net.eval()


sample = {sampler_name}
'''


def torch_export(folder: Path, *, title: str, net: torch.nn.Module, init: dict[str, Any], sampler: Any) -> None:
    """Write the three files of a plain-PyTorch export of ``net`` (built by ``type(net)(**init)``)."""
    helpers = "\n\n".join(inspect.getsource(f) for f in (standalone._images, standalone._generator))
    source = MODELING.format(title=title, version=genlab_version(), classes=inspect.getsource(type(net)),
                             helpers=helpers, sampler=inspect.getsource(sampler), net=type(net).__name__,
                             sampler_name=sampler.__name__)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {"genlab_version": genlab_version(), "network": type(net).__name__, "init": init}
    atomic_write_bytes(folder / "config.json", json.dumps(config, indent=2).encode())
    atomic_write_bytes(folder / "modeling.py", source.encode())


PIPELINE = '''"""A class-conditional DDIM pipeline for a genlab diffusion export (diffusers, no genlab needed).

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained("THIS_FOLDER", trust_remote_code=True)
    images = pipe(class_labels=[3, 3, 7], num_inference_steps=50, guidance_scale=1.0, output_type="np").images

Classifier-free guidance uses the extra "null" class ({num_classes}): guidance_scale 1 is plain conditional.
"""

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput


class GenlabClassPipeline(DiffusionPipeline):
    def __init__(self, unet, scheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @torch.no_grad()
    def __call__(self, class_labels, num_inference_steps=50, guidance_scale=1.0, generator=None, output_type="pil"):
        labels = torch.as_tensor(class_labels, dtype=torch.long)  # (n,)
        shape = (len(labels), self.unet.config.in_channels, self.unet.config.sample_size, self.unet.config.sample_size)
        x = torch.randn(shape, generator=generator)  # (n, C, H, W) x_T
        null = torch.full_like(labels, {num_classes})
        self.scheduler.set_timesteps(num_inference_steps)
        for t in self.progress_bar(self.scheduler.timesteps):
            if guidance_scale == 1:
                eps = self.unet(x, t, class_labels=labels).sample  # 1. predict the noise in x_t
            else:
                both = self.unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
                cond, uncond = both.chunk(2)
                eps = uncond + guidance_scale * (cond - uncond)
            x = self.scheduler.step(eps, t, x, generator=generator).prev_sample  # 2. x_t -> x_(t-1)
        images = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()  # (n, H, W, C) in [0, 1]
        if output_type == "pil":
            images = self.numpy_to_pil(images)
        return ImagePipelineOutput(images=images)
'''


def diffusers_export(folder: Path, *, unet: Any, scheduler: Any, num_classes: int) -> None:
    """A diffusers pipeline folder: ``DDPMPipeline`` for an unconditional UNet, else ``GenlabClassPipeline``."""
    from diffusers import DDPMPipeline

    unet = _plain_copy(unet)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(str(folder))
    if num_classes:
        index = json.loads((folder / "model_index.json").read_text())
        index["_class_name"] = ["pipeline", "GenlabClassPipeline"]
        atomic_write_bytes(folder / "model_index.json", json.dumps(index, indent=2).encode())
        atomic_write_bytes(folder / "pipeline.py", PIPELINE.replace("{num_classes}", str(num_classes)).encode())


def _plain_copy(unet: Any) -> Any:
    """The UNet without genlab's forward hooks (channels-last inputs), as diffusers will rebuild it."""
    from diffusers import UNet2DModel

    plain = UNet2DModel.from_config(unet.config)
    plain.load_state_dict(unet.state_dict())
    return plain.eval()
