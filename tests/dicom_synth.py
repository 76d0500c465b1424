"""Synthetic DICOM studies for tests and benches: the module `radflow demo` ships (radflow/dicom_synth.py)."""

from radflow.dicom_synth import SOP_CLASS_BY_MODALITY, SyntheticStudy

__all__ = ["SOP_CLASS_BY_MODALITY", "SyntheticStudy"]
