"""Measurements during training (see base.py), registered in `PROBES` and configured under `probes.<name>`; the
curvature probe (curvature.py), configured under `curvature`, measures what curvature/ computes."""

from noisereg.probes.base import CurvatureContext, Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.probes.calibration import CalibrationProbe
from noisereg.probes.curvature import CurvatureProbe, CurvatureSettings
from noisereg.probes.fourier import FourierProbe
from noisereg.probes.function_1d import Function1dProbe
from noisereg.probes.label_noise_regularizer import LabelNoiseRegularizerProbe
from noisereg.probes.layer_statistics import LayerStatisticsProbe
from noisereg.probes.matrix_recovery import MatrixRecoveryProbe
from noisereg.probes.nin_time_scales import NinTimeScalesProbe
from noisereg.probes.predictions import PredictionsProbe
from noisereg.probes.remainder import RemainderProbe
from noisereg.probes.unit_outputs import UnitOutputsProbe
from noisereg.registry import PROBES

__all__ = [
    "PROBES",
    "CalibrationProbe",
    "CurvatureContext",
    "CurvatureProbe",
    "CurvatureSettings",
    "FourierProbe",
    "Function1dProbe",
    "LabelNoiseRegularizerProbe",
    "LayerStatisticsProbe",
    "MatrixRecoveryProbe",
    "Measurement",
    "NinTimeScalesProbe",
    "PredictionsProbe",
    "Probe",
    "ProbeContext",
    "ProbeSettings",
    "RemainderProbe",
    "UnitOutputsProbe",
]
