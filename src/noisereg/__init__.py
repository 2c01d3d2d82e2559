"""noisereg: noise injection in neural-network training, reproduced (Orvieto et al., Blanc et al., Levi et al.,
Camuto et al.). The library parts — `noisereg.noise`, `noisereg.models`, `noisereg.data`, `noisereg.train`,
`noisereg.tracking` — work without Hydra; `run.py` composes them from the configs in conf/."""

__version__ = "0.1.0"
