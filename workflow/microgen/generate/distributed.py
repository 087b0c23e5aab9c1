"""The processes of one fine-tune: a single one, or several under DDP.

``python -m torch.distributed.run --nproc_per_node N`` (or ``accelerate launch``) starts N
copies of the same call; each learns its rank and the world size from the environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``). :func:`processes` then lets accelerate set up
the process group (NCCL on GPUs, gloo on the CPU) and the rank's device, and
:meth:`Processes.prepare` wraps the trained modules in one ``DistributedDataParallel``, which
averages their gradients over the ranks in every backward pass. A single process (no
``WORLD_SIZE``, or 1) touches neither accelerate nor ``torch.distributed``: its run is the
one it always was.

Every rank draws the whole batch from the same generator and computes only its rows
(:meth:`Processes.rows`), so N ranks of batch b see the examples, flips, timesteps and noise
of one process of batch N·b, and their generators stay in step (a checkpoint of rank 0's
state is every rank's).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch

from microgen.device import select_device

__all__ = ["Processes", "launched_processes", "processes"]

#: How long a rank waits for the others at a collective. The others wait while rank 0 alone
#: draws the DreamBooth class images (the paper's 100, once per run), samples a validation
#: grid or writes a checkpoint; NCCL's default of 10 minutes must not end such a wait.
WAIT = timedelta(hours=3)


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass(frozen=True)
class Processes:
    """This process's place among those of one run.

    Attributes
    ----------
    device : the device this process trains on (under DDP on GPUs ``cuda:LOCAL_RANK``).
    rank, world : this process's rank and the number of processes.
    accelerator : accelerate's ``Accelerator`` when ``world`` > 1, else None.
    """

    device: torch.device
    rank: int = 0
    world: int = 1
    accelerator: object | None = None

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0

    def rows(self, per_rank: int) -> slice:
        """This rank's rows of a batch of ``per_rank`` × ``world`` drawn by every rank."""
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def barrier(self) -> None:
        """Wait until every rank is here (no-op for one process)."""
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it writes a cache), the others after it (they read
        it)."""
        if self.accelerator is None:
            yield
            return
        with self.accelerator.main_process_first():
            yield

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` (holding every trained module of the run) as DDP under several
        processes, so that one all-reduce averages all its gradients; itself for one.

        ``find_unused_parameters``: a step need not reach every trained tensor, and DDP
        otherwise waits for their gradients forever; SDXL reads CLIP-L's penultimate layer
        and not its pooled output, so the adapters of CLIP-L's last layer get no gradient.
        Buffers are synchronised once, not before every step: they are constants (SD3's
        positional embedding, CLIP's position ids). Built here rather than by accelerate's
        ``prepare_model``, whose DDP options cannot say ``forward_sync_buffers`` (torch's
        successor of ``broadcast_buffers``)."""
        if self.accelerator is None:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=True, forward_sync_buffers=False
        )

    def no_sync(self, module: torch.nn.Module, skip: bool):
        """With ``skip``, a context in which backward accumulates gradients without the
        all-reduce (all micro-batches of an accumulated step but the last)."""
        if skip and isinstance(module, torch.nn.parallel.DistributedDataParallel):
            return module.no_sync()
        return contextlib.nullcontext()

    def mean(self, value: float) -> float:
        """``value`` averaged over the ranks (the loss of the whole batch); itself for one."""
        if self.accelerator is None:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        return float(self.accelerator.reduce(tensor, reduction="mean").item())

    def end(self) -> None:
        """Wait for rank 0's writes, then take down the process group."""
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
            self.accelerator.end_training()


def processes(device: str | torch.device | None = None) -> Processes:
    """This process's :class:`Processes`, from the launcher's environment.

    Parameters
    ----------
    device : for one process, the device to train on (default cuda when available, see
        :func:`microgen.device.select_device`); under several, ``"cpu"`` trains on the CPU
        with gloo, anything else on ``cuda:LOCAL_RANK`` with NCCL (the CPU when there is no
        GPU).

    Raises
    ------
    ValueError
        when several processes ask for CUDA on a node with fewer GPUs than processes, or
        accelerate does not see the launcher's world size.
    """
    world = launched_processes()
    if world == 1:
        return Processes(select_device(device))
    from accelerate import Accelerator, InitProcessGroupKwargs

    cpu = select_device(device).type == "cpu"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if not cpu and torch.cuda.device_count() < local:
        raise ValueError(
            f"{local} fine-tuning processes on this node but {torch.cuda.device_count()} "
            "GPU(s): give the job one GPU per process (the model's gpus)"
        )
    # Mixed precision stays the trainer's own (its autocast), not accelerate's.
    accelerator = Accelerator(
        cpu=cpu, mixed_precision="no", kwargs_handlers=[InitProcessGroupKwargs(timeout=WAIT)]
    )
    if accelerator.num_processes != world:
        raise ValueError(
            f"the launcher started {world} processes but accelerate sees "
            f"{accelerator.num_processes}"
        )
    return Processes(accelerator.device, accelerator.process_index, world, accelerator)
