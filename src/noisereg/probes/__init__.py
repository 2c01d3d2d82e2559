"""Measurements during training (see base.py), registered in `PROBES` and configured under `probes.<name>`."""
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.probes.function_1d import Function1dProbe
from noisereg.probes.label_noise_regularizer import LabelNoiseRegularizerProbe
from noisereg.probes.matrix_recovery import MatrixRecoveryProbe
from noisereg.probes.predictions import PredictionsProbe
from noisereg.probes.unit_outputs import UnitOutputsProbe
from noisereg.registry import PROBES

__all__ = [
    "PROBES",
    "Function1dProbe",
    "LabelNoiseRegularizerProbe",
    "MatrixRecoveryProbe",
    "Measurement",
    "PredictionsProbe",
    "Probe",
    "ProbeContext",
    "ProbeSettings",
    "UnitOutputsProbe",
]
