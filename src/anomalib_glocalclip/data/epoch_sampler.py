"""Hand the training epoch to a dataset whose samples change with it, through the sampler.

Dataloader workers hold copies of the dataset, so an epoch set on it in the main process may never reach them; the
indices do. ``EpochSampler`` pairs every index with the epoch, ``(epoch, index)`` (under DDP, Lightning's
distributed sampler splits the pairs between ranks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized

from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` for every index of ``sampler``.

    Args:
        sampler: the indices, e.g. a ``RandomSampler`` (which reshuffles every epoch).
        epoch: returns the epoch being run when an epoch starts (e.g. the trainer's ``current_epoch``); ``None``:
            the value of the last ``set_epoch`` call, which Lightning makes at the start of every epoch.
    """

    def __init__(self, sampler: Sampler[int], epoch: Callable[[], int] | None = None) -> None:
        super().__init__()
        self.sampler = sampler
        self.epoch_fn = epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (used when no ``epoch`` function was given)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """``(epoch, index)`` for every index of the wrapped sampler."""
        epoch = int(self.epoch_fn()) if self.epoch_fn is not None else self.epoch
        return ((epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        """Length of the wrapped sampler (0 if it has none)."""
        return len(self.sampler) if isinstance(self.sampler, Sized) else 0


def epoch_dataloader(
    dataset: Dataset, batch_size: int, num_workers: int, collate_fn: Callable | None,
    epoch: Callable[[], int] | None = None,
) -> DataLoader:
    """A shuffling dataloader whose dataset receives ``(epoch, index)`` keys (see ``EpochSampler``)."""
    sampler = EpochSampler(RandomSampler(dataset), epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, collate_fn=collate_fn)
