"""What RadAssist's segments and findings are, in the codes DICOM and Slicer's Terminologies module understand.

Each entry was checked against Slicer's own terminology files
(``SegmentationCategoryTypeModifier-SlicerGeneralAnatomy.json``, ``...-DICOM-Master.json`` and
``AnatomicRegionAndModifier-DICOM-Master.json``) or, where Slicer has no entry, against DICOM PS3.16 context groups:

* ground-glass opacity: (112120, DCM) from CID 6104 "Abnormal Opacity Finding or Feature";
* enhancing tumour: (C113842, NCIt, "Enhancing Lesion") from CID 7169 "Brain Lesion Segmentation Type";
* pleural effusion (60046008, SCT) is listed in CID 645; consolidation uses SNOMED CT "Lung consolidation"
  (95436008) and calcification "Pathologic calcification" (18115005, CID 3802): neither is in a Slicer list;
* lung infection as one class (ground glass or consolidation, the binary COVID-SemiSeg labels): SNOMED CT
  "Lesion" (52988006) in the lung, the generic morphologically altered structure.

Slicer stores a terminology as one string (see :func:`to_slicer_string`); the context names say which list the
codes come from, so Slicer can look up the recommended colour and show the entry in its terminology selector.
"""

from __future__ import annotations

from dataclasses import dataclass

from radassist.results.segments import Code, Terminology

# Where a Segment keeps the terminology context names a .seg.nrrd (or a Slicer segment) gave it.
TERMINOLOGY_CONTEXT_KEY = "radassist.terminologyContext"
ANATOMIC_CONTEXT_KEY = "radassist.anatomicContext"

SLICER_GENERAL_ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"
DICOM_MASTER = "Segmentation category and type - DICOM master list"
ANATOMIC_DICOM_MASTER = "Anatomic codes - DICOM master list"

# Categories (DICOM CID 7150) and the codes the catalogue reuses.
ANATOMICAL_STRUCTURE = Code("SCT", "123037004", "Anatomical Structure")
MORPHOLOGICALLY_ALTERED = Code("SCT", "49755003", "Morphologically Altered Structure")
RIGHT = Code("SCT", "24028007", "Right")
LEFT = Code("SCT", "7771000", "Left")
LUNG_CODE = Code("SCT", "39607008", "Lung")
LIVER_CODE = Code("SCT", "10200004", "Liver")
BRAIN_CODE = Code("SCT", "12738006", "Brain")
BREAST_CODE = Code("SCT", "76752008", "Breast")


@dataclass(frozen=True)
class CatalogueEntry:
    """One thing RadAssist produces: its terminology, the Slicer context it belongs to and a display colour."""

    key: str
    terminology: Terminology
    context: str
    color: tuple[float, float, float]
    in_slicer_list: bool


def _rgb(r: int, g: int, b: int) -> tuple[float, float, float]:
    return (r / 255.0, g / 255.0, b / 255.0)


def _entry(key: str, category: Code, type_: Code, color: tuple[float, float, float], context: str,
           in_slicer_list: bool = True, modifier: Code | None = None, region: Code | None = None) -> CatalogueEntry:
    return CatalogueEntry(key, Terminology(category, type_, modifier, region), context, color, in_slicer_list)


_NECROSIS = Code("SCT", "6574001", "Necrosis")
_EDEMA = Code("SCT", "79654002", "Edema")

CATALOGUE: dict[str, CatalogueEntry] = {entry.key: entry for entry in (
    # Colours are Slicer's recommendedDisplayRGBValue where its list has one.
    _entry("lung", ANATOMICAL_STRUCTURE, LUNG_CODE, _rgb(197, 165, 145), SLICER_GENERAL_ANATOMY),
    _entry("right lung", ANATOMICAL_STRUCTURE, LUNG_CODE, _rgb(22, 197, 71), SLICER_GENERAL_ANATOMY,
           modifier=RIGHT),
    _entry("left lung", ANATOMICAL_STRUCTURE, LUNG_CODE, _rgb(197, 25, 99), SLICER_GENERAL_ANATOMY, modifier=LEFT),
    _entry("lung nodule", MORPHOLOGICALLY_ALTERED, Code("SCT", "27925004", "Nodule"), _rgb(255, 215, 0),
           DICOM_MASTER, region=LUNG_CODE),
    _entry("liver", ANATOMICAL_STRUCTURE, LIVER_CODE, _rgb(221, 130, 101), SLICER_GENERAL_ANATOMY),
    _entry("liver tumour", MORPHOLOGICALLY_ALTERED, Code("SCT", "108369006", "Neoplasm"), _rgb(230, 60, 60),
           DICOM_MASTER, region=LIVER_CODE),
    _entry("brain", ANATOMICAL_STRUCTURE, BRAIN_CODE, _rgb(250, 250, 225), SLICER_GENERAL_ANATOMY),
    _entry("tumour necrosis", MORPHOLOGICALLY_ALTERED, _NECROSIS, _rgb(216, 191, 216), SLICER_GENERAL_ANATOMY,
           region=BRAIN_CODE),
    _entry("oedema", MORPHOLOGICALLY_ALTERED, _EDEMA, _rgb(140, 224, 228), SLICER_GENERAL_ANATOMY,
           region=BRAIN_CODE),
    # BraTS labels without an entry of their own in Slicer's lists: coded as what they are a part of (a neoplasm, or
    # necrosis) in the brain, with the precise name on the segment.
    _entry("non-enhancing tumour", MORPHOLOGICALLY_ALTERED, Code("SCT", "108369006", "Neoplasm"), _rgb(255, 210, 120),
           DICOM_MASTER, region=BRAIN_CODE),
    _entry("necrotic and non-enhancing tumour core", MORPHOLOGICALLY_ALTERED, Code("SCT", "108369006", "Neoplasm"),
           _rgb(216, 191, 216), DICOM_MASTER, region=BRAIN_CODE),
    _entry("necrotic tumour core", MORPHOLOGICALLY_ALTERED, _NECROSIS, _rgb(216, 191, 216), SLICER_GENERAL_ANATOMY,
           region=BRAIN_CODE),
    _entry("enhancing tumour", MORPHOLOGICALLY_ALTERED, Code("NCIt", "C113842", "Enhancing Lesion"),
           _rgb(255, 80, 0), DICOM_MASTER, in_slicer_list=False, region=BRAIN_CODE),
    _entry("ground-glass opacity", MORPHOLOGICALLY_ALTERED, Code("DCM", "112120", "Ground glass opacity"),
           _rgb(120, 180, 255), DICOM_MASTER, in_slicer_list=False, region=LUNG_CODE),
    _entry("consolidation", MORPHOLOGICALLY_ALTERED, Code("SCT", "95436008", "Lung consolidation"),
           _rgb(255, 140, 60), DICOM_MASTER, in_slicer_list=False, region=LUNG_CODE),
    _entry("lung infection", MORPHOLOGICALLY_ALTERED, Code("SCT", "52988006", "Lesion"), _rgb(230, 70, 70),
           DICOM_MASTER, in_slicer_list=False, region=LUNG_CODE),
    _entry("pleural effusion", MORPHOLOGICALLY_ALTERED, Code("SCT", "60046008", "Pleural effusion"),
           _rgb(90, 120, 255), DICOM_MASTER, in_slicer_list=False),
    _entry("breast mass", MORPHOLOGICALLY_ALTERED, Code("SCT", "4147007", "Mass"), _rgb(144, 238, 144),
           SLICER_GENERAL_ANATOMY, region=BREAST_CODE),
    _entry("calcification", MORPHOLOGICALLY_ALTERED, Code("SCT", "18115005", "Pathologic calcification"),
           _rgb(255, 255, 255), DICOM_MASTER, in_slicer_list=False, region=BREAST_CODE),
)}


def terminology_for(key: str) -> Terminology:
    """The catalogue's terminology for ``key`` (e.g. ``"liver tumour"``); KeyError names the known keys."""
    try:
        return CATALOGUE[key].terminology
    except KeyError:
        raise KeyError(f"no terminology for {key!r}; known: {sorted(CATALOGUE)}") from None


def context_for(terminology: Terminology) -> str:
    """The Slicer context list a terminology's category and type come from (DICOM master when unknown)."""
    def codes(t: Terminology) -> tuple[str, ...]:
        return t.category.scheme, t.category.value, t.type.scheme, t.type.value

    return next((e.context for e in CATALOGUE.values() if codes(e.terminology) == codes(terminology)), DICOM_MASTER)


def _code_text(code: Code | None) -> str:
    if code is None:
        return "^^"
    for part in (code.scheme, code.value, code.meaning):
        if any(ch in part for ch in "~^|"):
            raise ValueError(f"terminology code {code} contains one of '~^|', which Slicer uses as separators")
    return f"{code.scheme}^{code.value}^{code.meaning}"


def _code_from_text(text: str) -> Code | None:
    parts = text.split("^")
    if len(parts) != 3:
        raise ValueError(f"a terminology code needs scheme^value^meaning, got {text!r}")
    if not any(parts):
        return None
    return Code(*parts)


def to_slicer_string(terminology: Terminology, context: str | None = None,
                     anatomic_context: str = ANATOMIC_DICOM_MASTER) -> str:
    """Slicer's ``TerminologyEntry`` tag value: seven '~'-separated fields, codes as scheme^value^meaning."""
    context = context if context is not None else context_for(terminology)
    fields = [context, _code_text(terminology.category), _code_text(terminology.type),
              _code_text(terminology.type_modifier), anatomic_context,
              _code_text(terminology.anatomic_region), _code_text(terminology.anatomic_region_modifier)]
    return "~".join(fields)


def from_slicer_string(text: str) -> tuple[Terminology, str, str]:
    """Parse a ``TerminologyEntry`` value into (terminology, context name, anatomic context name)."""
    fields = text.split("~")
    if len(fields) != 7:
        raise ValueError(f"a Slicer terminology entry has 7 '~'-separated fields, got {len(fields)}: {text!r}")
    category, type_ = _code_from_text(fields[1]), _code_from_text(fields[2])
    if category is None or type_ is None:
        raise ValueError(f"terminology entry without category or type: {text!r}")
    terminology = Terminology(category=category, type=type_, type_modifier=_code_from_text(fields[3]),
                              anatomic_region=_code_from_text(fields[5]),
                              anatomic_region_modifier=_code_from_text(fields[6]))
    return terminology, fields[0], fields[4]


def terminology_to_dict(terminology: Terminology) -> dict[str, list[str]]:
    """Plain-JSON form used in label tables and by slicerio: the parts that are set, as [scheme, value, meaning]."""
    parts = {"category": terminology.category, "type": terminology.type,
             "typeModifier": terminology.type_modifier, "anatomicRegion": terminology.anatomic_region,
             "anatomicRegionModifier": terminology.anatomic_region_modifier}
    return {name: [code.scheme, code.value, code.meaning] for name, code in parts.items() if code is not None}


def terminology_from_dict(data: dict) -> Terminology:
    """Inverse of :func:`terminology_to_dict`; raises ValueError on a malformed entry."""
    def code(name: str) -> Code | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise ValueError(f"terminology {name} must be [scheme, value, meaning], got {value!r}")
        return Code(*(str(v) for v in value))

    category, type_ = code("category"), code("type")
    if category is None or type_ is None:
        raise ValueError("terminology needs a category and a type")
    return Terminology(category, type_, code("typeModifier"), code("anatomicRegion"), code("anatomicRegionModifier"))
