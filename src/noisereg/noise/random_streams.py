"""Seeded random streams for the noise modes, with Gaussian draws spread over the CPU cores.

torch's CPU `normal_` runs on one core (about 4 ns per value here): drawing σ-noise for every parameter of the
4.8 M-parameter MLP costs 12 % of its training step. Large tensors are therefore split into a fixed number of
chunks, each filled from its own generator by a thread pool (`normal_` releases the GIL). The values depend on
the seed only, never on the number of threads. On CUDA one device generator is fast enough.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

CHUNKS = 4  # fixed, so the draws are the same whatever the thread count
PARALLEL_MIN_ELEMENTS = 1 << 18  # below this a single stream is faster than handing work to threads


class RandomStreams:
    def __init__(self, seed: int | None):
        # Unseeded: derive from torch's global generator, so torch.manual_seed still makes runs repeatable.
        self.seed = int(torch.randint(2**62, (1,))) if seed is None else int(seed)
        self._generators: dict[tuple[torch.device, int], torch.Generator] = {}
        self._pool: ThreadPoolExecutor | None = None

    def generator(self, device: torch.device | str = "cpu", stream: int = 0) -> torch.Generator:
        device = torch.device(device)
        key = (device, stream)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed + 7919 * stream)
        return self._generators[key]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every generator's state, keyed `device/stream` (what a run needs to continue its draws exactly)."""
        return {f"{device}/{stream}": g.get_state() for (device, stream), g in self._generators.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, generator_state in state.items():
            device, stream = key.rsplit("/", 1)
            self.generator(device, int(stream)).set_state(generator_state.cpu())

    def normal_(self, tensor: torch.Tensor, std: float) -> torch.Tensor:
        """Fill `tensor` (contiguous) with N(0, std²) values in place."""
        if tensor.device.type != "cpu" or tensor.numel() < PARALLEL_MIN_ELEMENTS:
            return tensor.normal_(0.0, std, generator=self.generator(tensor.device))
        if not tensor.is_contiguous():  # e.g. channels-last: draw in standard order, then copy
            return tensor.copy_(self.normal_(torch.empty(tensor.shape, dtype=tensor.dtype), std))
        fills = [
            (chunk.normal_, self.generator("cpu", 1 + index))
            for index, chunk in enumerate(tensor.view(-1).chunk(CHUNKS))
        ]
        threads = min(CHUNKS, torch.get_num_threads())
        if threads < 2:
            for fill, generator in fills:
                fill(0.0, std, generator=generator)
            return tensor
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="noisereg-noise")
        for future in [self._pool.submit(fill, 0.0, std, generator=generator) for fill, generator in fills]:
            future.result()
        return tensor
