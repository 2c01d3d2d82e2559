"""noisereg: noise injection in neural-network training, reproduced (Orvieto et al., Blanc et al., Levi et al.,
Camuto et al.). The library parts — `noisereg.noise`, `noisereg.models`, `noisereg.data`, `noisereg.train`,
`noisereg.tracking` — work without Hydra; `run.py` composes them from the configs in conf/."""

import os

# OpenMP threads that spin after each parallel region steal the cores our parallel noise draws run on
# (noise/random_streams.py); passive waiting cost nothing measurable on a plain training step (scripts/bench_noise.py).
# It only takes effect when set before torch is first imported: run.py and the scripts import noisereg first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
