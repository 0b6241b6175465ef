"""Data for mmclip: records and dataset adapters, synthetic X-rays, the DALI / PIL image
pipeline, and loaders that yield :class:`~mmclip.batch.MMCLIPBatch`.

Typical use::

    from mmclip.data import LoaderConfig, XrayLoader, load_manifest, synthetic

    manifest = synthetic.write_dataset("/tmp/synth", n=512)
    records = [r for r in load_manifest(manifest) if r.split == "train"]
    loader = XrayLoader(records, LoaderConfig(batch_size=32), tokenizer=tokenizer)
    for batch in loader:
        ...
"""

from mmclip.data import synthetic
from mmclip.data.collate import (
    DiseaseKindPrompter,
    Prompter,
    RadiologyTextEncoder,
    ReportTokenizer,
    TokenizedText,
    build_batch,
    disease_kind_id,
)
from mmclip.data.dali_pipeline import DaliImagePipeline, dali_available
from mmclip.data.loader import BatchBuilder, LoaderConfig, ShardedOrder, XrayLoader
from mmclip.data.mixing import MixingLoader, allocate
from mmclip.data.records import (
    CHEXPERT_FINDINGS,
    DataError,
    SkipCounter,
    XrayRecord,
    patient_split,
    resolve_under_root,
)
from mmclip.data.sources import (
    SOURCES,
    list_sources,
    load_chexpert,
    load_covid_collection,
    load_covidx,
    load_image_folder,
    load_iu_xray,
    load_kermany,
    load_manifest,
    load_mimic_cxr,
    load_nih_chestxray14,
    load_rsna_pneumonia,
    load_siim_pneumothorax,
    load_source,
)
from mmclip.data.transforms import AugmentParams, PilImagePipeline, TransformConfig, sample_params

__all__ = [
    "CHEXPERT_FINDINGS",
    "SOURCES",
    "AugmentParams",
    "BatchBuilder",
    "DaliImagePipeline",
    "DataError",
    "DiseaseKindPrompter",
    "LoaderConfig",
    "MixingLoader",
    "PilImagePipeline",
    "Prompter",
    "RadiologyTextEncoder",
    "ReportTokenizer",
    "ShardedOrder",
    "SkipCounter",
    "TokenizedText",
    "TransformConfig",
    "XrayLoader",
    "XrayRecord",
    "allocate",
    "build_batch",
    "dali_available",
    "disease_kind_id",
    "list_sources",
    "load_chexpert",
    "load_covid_collection",
    "load_covidx",
    "load_image_folder",
    "load_iu_xray",
    "load_kermany",
    "load_manifest",
    "load_mimic_cxr",
    "load_nih_chestxray14",
    "load_rsna_pneumonia",
    "load_siim_pneumothorax",
    "load_source",
    "patient_split",
    "resolve_under_root",
    "sample_params",
    "synthetic",
]
