"""Tiny random-weight GFPGAN, RetinaFace and ParseNet files for the face-restoration tests.

The files have the layout of the real ones (``GFPGANv1.4.pth`` holds
``{"params_ema": state_dict}``; the facexlib files are plain state dicts), so
the tests go through the real loading code. The networks are small enough to
run in a fraction of a second on a CPU, and crafted so the pipeline has work:

* the detector "finds" exactly one face, at the centre of a ``size``×``size``
  picture (whatever it shows), with five landmarks laid out like the FFHQ
  template. Its backbone and FPN are zeroed, so the features entering the
  last SSH block are constant; that block's all-positive 3×3 convolutions then
  peak at the centre cell, because zero padding lowers the border cells. The
  class head turns that peak into the only score above facexlib's 0.97, and the
  box and landmark heads are biases alone (offsets from the winning anchor);
* the parser labels every pixel "skin", so the pasted face has a full mask;
* GFPGAN keeps its random weights: its output differs from any input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Picture size the tiny detector is calibrated for (its top feature map is 3×3).
SIZE = 96
#: Eye distance of the detected face, in pixels; the face crop is 512/126 of it.
EYE_DISTANCE = 16.0

TINY_OPTIONS: dict[str, Any] = {
    "out_size": 32,
    "num_style_feat": 16,
    "channel_multiplier": 1,
    "narrow": 0.0625,
    "num_mlp": 2,
    "detection_network": "mobile0.25",
    "parsing_base_ch": 4,
    "parsing_res_depth": 1,
    "parsing_min_feat_size": 64,
    "parsing_ch_range": [4, 8],
}

# FFHQ five-point template of a 512×512 face (facexlib's FaceRestoreHelper)
_TEMPLATE = [(192.98138, 239.94708), (318.90277, 240.1936), (256.63416, 314.01935),
             (201.26117, 371.41043), (313.08905, 371.15118)]


def face_box(size: int = SIZE) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the square the tiny detector's face is cropped from."""
    scale = EYE_DISTANCE / (_TEMPLATE[1][0] - _TEMPLATE[0][0])
    half = 256 * scale
    centre = size / 2
    return (round(centre - half), round(centre - half), round(centre + half),
            round(centre + half))


def _crafted_detector(network: str, size: int, find_face: bool) -> Any:
    import warnings

    import torch
    from facexlib.detection.retinaface import RetinaFace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        net = RetinaFace(network_name=network, half=False, device=torch.device("cpu"))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
            elif isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
        # constant features into the last SSH block, ...
        net.fpn.output3[1].bias.fill_(1.0)
        # ... which all-positive convolutions turn into a centre peak
        for conv in net.ssh3.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.weight.fill_(1.0 / (conv.in_channels * 9))
        side = -(-size // 32)
        stage3 = torch.zeros(1, net.fpn.output3[0].in_channels, side, side)
        features = net.ssh3(net.fpn.output3(stage3))
        level = features.mean(dim=1).flatten().sort(descending=True).values
        top, second = float(level[0]), float(level[1])
        assert top > second, "the detector needs an odd top feature map: pick another size"

        heads = net.cfg["min_sizes"][2]  # anchors of the top level: 256 and 512 px
        for i in range(3):
            net.ClassHead[i].conv1x1.bias.copy_(torch.tensor([0.0, -30.0, 0.0, -30.0]))
        if find_face:
            # logit 6 (score 0.9975) at the centre, below 2 (score < 0.88) elsewhere
            gain = 4.0 / (top - second)
            cls = net.ClassHead[2].conv1x1
            cls.weight[1].fill_(gain / cls.in_channels)
            cls.bias[1] = 6.0 - gain * top
        prior = float(heads[0])  # the 256 px anchor wins; offsets are in its units
        scale = EYE_DISTANCE / (_TEMPLATE[1][0] - _TEMPLATE[0][0])
        box_side = 512 * scale
        box_log = torch.log(torch.tensor(box_side / prior)).item() / 0.2
        marks = [((x - 256) * scale / prior / 0.1, (y - 256) * scale / prior / 0.1)
                 for x, y in _TEMPLATE]
        net.BboxHead[2].conv1x1.bias.copy_(torch.tensor([0.0, 0.0, box_log, box_log] * 2))
        flat = [v for point in marks for v in point]
        net.LandmarkHead[2].conv1x1.bias.copy_(torch.tensor(flat * 2))
    return net


def _tiny_parser(opts: dict[str, Any]) -> Any:
    import torch
    from facexlib.parsing.parsenet import ParseNet

    net = ParseNet(in_size=512, out_size=512, parsing_ch=19, base_ch=opts["parsing_base_ch"],
                   res_depth=opts["parsing_res_depth"], min_feat_size=opts["parsing_min_feat_size"],
                   ch_range=opts["parsing_ch_range"])
    with torch.no_grad():
        conv = net.out_mask_conv.conv2d
        conv.weight.zero_()
        conv.bias.zero_()
        conv.bias[1] = 10.0  # class 1: skin
    return net


def make_face_restorer(folder: Path, *, find_face: bool = True, size: int = SIZE,
                       seed: int = 0, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write tiny weights into ``folder``; return a ``face_restorer:`` config mapping.

    ``options`` (default: ``TINY_OPTIONS``) picks the architecture; ``{}`` gives
    real-sized networks, for timing.
    """
    import torch

    from generator.render.faces import _build_gfpgan, face_options

    options = dict(TINY_OPTIONS if options is None else options)
    opts = face_options(options)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    gfpgan = _build_gfpgan(opts)
    network = opts["detection_network"]
    paths = {
        "model": folder / "GFPGANv1.4.pth",
        "detection": folder / f"detection_{network.replace('resnet', 'Resnet')}_Final.pth",
        "parsing": folder / "parsing_parsenet.pth",
    }
    torch.save({"params_ema": gfpgan.state_dict()}, paths["model"])
    torch.save(_crafted_detector(network, size, find_face).state_dict(), paths["detection"])
    torch.save(_tiny_parser(opts).state_dict(), paths["parsing"])
    return {**{k: str(v) for k, v in paths.items()}, "options": options}
