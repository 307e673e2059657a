"""The two networks of the infection study as registered architectures, and the default label table.

``lung-infection-unet`` and ``lung-infection-segnet`` are built from :mod:`radassist.nets`. The class names and
their codes are data: a checkpoint carries its label table (written by training), a catalogue entry its
``labels``; :func:`default_label_table` is only what a new training run starts from, taken from the project's
terminology catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from radassist.nets.segnet import ENCODER_PRESETS, SegNet2d
from radassist.nets.unet2d import UNET_PAPER_CHANNELS, unet_from_config
from radassist.results.segments import Segment
from radassist.results.terminology import CATALOGUE, terminology_from_dict, terminology_to_dict
from radassist.runtime.registry import register_architecture

TASK = "lung-infection-segmentation"  # the catalogue's task name
UNET = "lung-infection-unet"
SEGNET = "lung-infection-segnet"
ARCHITECTURES = {"unet": UNET, "segnet": SEGNET}  # --arch choice -> architecture (and catalogue model id)

# Saood and Hatem 2021 (BMC Med Imaging 21:19): four classes, C0 background/normal lung, C1 ground-glass opacity,
# C2 consolidation, C3 pleural effusion, as in the MedSeg / SIRM COVID-19 CT segmentation set.
DEFAULT_CLASSES = ("ground-glass opacity", "consolidation", "pleural effusion")  # label values 1, 2, 3
BACKGROUND_NAME = "background"
PAPER_CLASS_COUNT = 4


@dataclass(frozen=True)
class InfectionUNetConfig:
    """``lung-infection-unet``: the classic U-Net of :class:`radassist.nets.UNet2d`."""

    in_channels: int = 1  # one CT channel in the lung window
    out_channels: int = PAPER_CLASS_COUNT  # C0-C3 (Saood and Hatem 2021)
    channels: tuple[int, ...] = UNET_PAPER_CHANNELS  # 64..1024, four poolings (Ronneberger et al. 2015, Fig. 1)
    batch_norm: bool = True  # the study's U-Net has batch normalisation after each convolution
    dropout: float = 0.0
    upsample: str = "transpose"  # learned 2x2 up-convolution (Ronneberger et al. 2015)


@dataclass(frozen=True)
class InfectionSegNetConfig:
    """``lung-infection-segnet``: :class:`radassist.nets.SegNet2d` with a VGG encoder.

    ``channels``/``convs_per_stage`` left empty take the ``encoder`` preset's; giving them builds a custom encoder.
    """

    in_channels: int = 1
    out_channels: int = PAPER_CLASS_COUNT  # C0-C3 (Saood and Hatem 2021)
    encoder: str = "vgg16-bn"  # SegNet's encoder is VGG-16's 13 convolutions (Badrinarayanan et al. 2017, Sec. 3)
    channels: tuple[int, ...] = ()
    convs_per_stage: tuple[int, ...] = ()
    batch_norm: bool = True
    dropout: float = 0.0


def build_segnet(config: InfectionSegNetConfig) -> nn.Module:
    if config.encoder not in ENCODER_PRESETS:
        raise ValueError(f"unknown SegNet encoder {config.encoder!r}; known: {', '.join(ENCODER_PRESETS)}")
    preset_channels, preset_convs = ENCODER_PRESETS[config.encoder]
    return SegNet2d(in_channels=config.in_channels, out_channels=config.out_channels,
                    channels=config.channels or preset_channels, convs_per_stage=config.convs_per_stage or preset_convs,
                    batch_norm=config.batch_norm, dropout=config.dropout)


register_architecture(UNET, InfectionUNetConfig, unet_from_config,
                      description="2-D U-Net for lung infection classes on axial CT slices (Saood and Hatem 2021)")
register_architecture(SEGNET, InfectionSegNetConfig, build_segnet,
                      description="2-D SegNet (pooling-index unpooling) for lung infection classes on CT slices")


# ------------------------------------------------------------------------------------------------ label tables


def default_label_table(class_keys: Sequence[str] = DEFAULT_CLASSES) -> list[dict[str, Any]]:
    """Label table entries (value 1.., name, colour 0..255, terminology) for terminology-catalogue keys."""
    return [{"name": key, "value": value, "color": [int(round(c * 255)) for c in CATALOGUE[key].color],
             "terminology": terminology_to_dict(CATALOGUE[key].terminology)}
            for value, key in enumerate(class_keys, start=1)]


def segments_from_label_table(table: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """One :class:`Segment` per foreground entry of a label table (checkpoint ``labels`` or catalogue form).

    Colours are 0..255 as the catalogue writes them; an entry without terminology gets none.
    """
    return [Segment(name=str(entry["name"]), label_value=int(entry["value"]),
                    color=(0.5, 0.5, 0.5) if entry.get("color") is None else
                    tuple(float(c) / 255.0 for c in entry["color"]),
                    terminology=terminology_from_dict(entry["terminology"]) if entry.get("terminology") else None)
            for entry in sorted(table, key=lambda e: int(e["value"])) if int(entry["value"]) != 0]


def class_names(table: Sequence[Mapping[str, Any]], num_classes: int) -> list[str]:
    """Names of classes 0..num_classes-1: the table's names, "background" for 0, "class N" for gaps."""
    names = {int(e["value"]): str(e["name"]) for e in table}
    return [names.get(value, BACKGROUND_NAME if value == 0 else f"class {value}") for value in range(num_classes)]
