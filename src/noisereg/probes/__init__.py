"""Measurements during training (see base.py), registered in `PROBES` and configured under `probes.<name>`."""
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.probes.nin_time_scales import NinTimeScalesProbe
from noisereg.probes.predictions import PredictionsProbe
from noisereg.registry import PROBES

__all__ = ["PROBES", "Measurement", "NinTimeScalesProbe", "PredictionsProbe", "Probe", "ProbeContext", "ProbeSettings"]
