# Copyright (c) mmbinpc contributors. All rights reserved.
"""Random state for resumes that reproduce the uninterrupted run.

mmengine seeds Python's ``random``, NumPy and torch once, when the Runner is
built; from then on the generators run on through model initialisation, data
augmentation, dropout, validation and the DataLoader's own draws. A run
resumed from ``epoch_N.pth`` starts them afresh at the seed, so its
augmentations and dropout masks differ from the uninterrupted run's from the
first step on. Dataloader workers are no better: mmengine seeds each one
with ``seed + worker_id`` when it starts, so persistent workers carry their
state across epochs and a resumed run restarts it.

:class:`RNGStateHook` makes every random draw of training a function of the
seed and the position in training, not of the history of the process:

* main process: Python, NumPy and torch (CPU and CUDA) generators are
  reseeded from ``(seed, epoch)`` before each training epoch and from
  ``(seed, iteration)`` before each training iteration;
* data loading: each batch is preceded by reseeding the generators of the
  process that loads it (a worker, or the main process without workers)
  from ``(seed, epoch, the batch's sample indices)``, so it does not matter
  which worker loads it, whether workers persist, or how many there are
  (none included);
* the sampler: mmengine's ``DefaultSampler`` already shuffles from
  ``seed + epoch``; the seed it used is saved and given back on resume.

Saved in every checkpoint (``checkpoint['rng_state']``): the seed and
sampler seed, and the generator states at the save (restored when resuming,
which is what matters for loops this hook does not reseed, e.g.
iteration-based ones). Resuming an epoch-based run from ``epoch_N.pth`` then
replays epochs ``N+1..`` exactly as the uninterrupted run did: with
``randomness=dict(seed=..., deterministic=True)`` the final weights are
bit-identical (tested in ``tests/test_engine/test_resume_reproduces.py``).

Reseeding changes the random streams relative to mmengine's default (a run
with this hook is reproducible, but not the same as a run without it).
"""
import random
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop, EpochBasedTrainLoop

RNG_STATE_KEY = 'rng_state'
RNG_STATE_VERSION = 1
# Stream labels, so the epoch, iteration and batch seeds never coincide.
_EPOCH, _ITER, _BATCH = 1, 2, 3


def derive_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed from a base seed and integer keys (NumPy SeedSequence).

    Args:
        seed (int): The run's seed.
        *keys (int): Where in training (stream label, epoch, ...).

    Returns:
        int: A seed in ``[0, 2**64)``.
    """
    entropy = [int(seed) % 2**64] + [int(k) % 2**64 for k in keys]
    words = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_rng_state() -> Dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    if 'python' in state:
        version, internal, gauss = state['python']
        random.setstate((version, tuple(internal), gauss))
    if 'numpy' in state:
        np.random.set_state(tuple(state['numpy']))
    if 'torch' in state:
        torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state['cuda']]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


class BatchSeeding:
    """A ``worker_init_fn`` that reseeds a worker before every batch.

    In the worker process it runs the previous ``worker_init_fn`` (mmengine's)
    and then gives the worker's own copy of the dataset a ``__getitems__``
    (the batched-fetch method torch's map-style fetcher calls) that seeds the
    worker's generators from ``(seed, epoch, indices)`` and loads the batch.
    Only that worker's copy is changed; the dataset in the main process is
    not.

    Args:
        seed (int): The run's seed.
        epoch (Tensor): A shared-memory int64 scalar holding the current
            epoch (written by :class:`RNGStateHook` in the main process).
        previous (callable, optional): The loader's ``worker_init_fn``.
    """

    def __init__(self,
                 seed: int,
                 epoch: torch.Tensor,
                 previous: Optional[Callable[[int], Any]] = None) -> None:
        self.seed = int(seed)
        self.epoch = epoch
        self.previous = previous

    def __call__(self, worker_id: int) -> None:
        if self.previous is not None:
            self.previous(worker_id)
        info = torch.utils.data.get_worker_info()
        if info is not None:  # in a worker: seed its copy of the dataset
            self.install(info.dataset)

    def install(self, dataset: Any) -> None:
        """Make ``dataset``'s batched fetch reseed before every batch.

        Used on each worker's copy of the dataset, and on the dataset itself
        when the loader has no workers (batches are then loaded exactly as a
        worker would load them).
        """
        if getattr(dataset, '_mmbinpc_batch_seeding', None) is self:
            return
        if not hasattr(dataset, '_mmbinpc_batch_seeding'):  # first install
            dataset._mmbinpc_fetch_many = getattr(dataset, '__getitems__',
                                                  None)
        fetch_many = dataset._mmbinpc_fetch_many
        seed, epoch = self.seed, self.epoch

        def seeded_getitems(indices: List[int]) -> list:
            seed_all(
                derive_seed(seed, _BATCH, int(epoch.item()),
                            *[int(i) for i in indices]))
            if fetch_many is not None:
                return fetch_many(indices)
            return [dataset[i] for i in indices]

        dataset.__getitems__ = seeded_getitems
        dataset._mmbinpc_batch_seeding = self


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Reseed per epoch and iteration, seed workers per batch, save states.

    On by default in ``configs/_base_/default_runtime.py``
    (``default_hooks.rng_state``). By default it reseeds only runs that ask
    for reproducibility (``randomness=dict(seed=..., deterministic=True)``);
    other runs keep mmengine's random streams (so their results do not
    change with this hook) and get their states saved and restored.

    Args:
        reseed (bool, optional): Reseed the generators at every training
            epoch and iteration (epoch-based loops). None (default): when
            the runner is deterministic. With False only the states are
            saved and restored.
    """

    priority = 'VERY_HIGH'

    def __init__(self, reseed: Optional[bool] = None) -> None:
        self.reseed = None if reseed is None else bool(reseed)
        self.seed: Optional[int] = None
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._resumed: Optional[Dict[str, Any]] = None
        self._active = False

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _sampler(runner) -> Any:
        loader = runner.train_loop.dataloader
        sampler = getattr(loader, 'sampler', None)
        if not hasattr(sampler, 'seed'):
            batch_sampler = getattr(loader, 'batch_sampler', None)
            sampler = getattr(batch_sampler, 'sampler', None)
        return sampler if hasattr(sampler, 'seed') else None

    # ------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the seeds and the generator states in the checkpoint."""
        loop = getattr(runner, '_train_loop', None)  # built ones only
        sampler = self._sampler(runner) if isinstance(loop, BaseLoop) \
            else None
        checkpoint[RNG_STATE_KEY] = dict(
            version=RNG_STATE_VERSION,
            seed=runner.seed,
            sampler_seed=getattr(sampler, 'seed', None),
            reseed=self._active,
            state=get_rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the saved states of a resumed run for :meth:`before_train`.

        (mmengine reseeds after this call when the checkpoint's seed differs
        from the config's, so the states are applied later.)
        """
        saved = checkpoint.get(RNG_STATE_KEY)
        resuming = getattr(runner, '_resume', False) or runner.cfg.get(
            'resume', False)
        if isinstance(saved, dict) and resuming:
            self._resumed = saved

    # -------------------------------------------------------------- train
    def before_train(self, runner) -> None:
        """Restore a resumed run's states; set up worker and main seeding."""
        self.seed = int(runner.seed)
        sampler = self._sampler(runner)
        if self._resumed is not None:
            saved = self._resumed
            if sampler is not None and saved.get('sampler_seed') is not None \
                    and sampler.seed != saved['sampler_seed']:
                runner.logger.info(
                    f'RNGStateHook: sampler seed {saved["sampler_seed"]} '
                    f'restored from the checkpoint (was {sampler.seed})')
                sampler.seed = saved['sampler_seed']
            if saved.get('state'):
                set_rng_state(saved['state'])
        reseed = bool(runner.deterministic) if self.reseed is None \
            else self.reseed
        self._active = reseed and isinstance(runner.train_loop,
                                             EpochBasedTrainLoop)
        if not self._active:
            if reseed:
                runner.logger.info(
                    'RNGStateHook: not an epoch-based training loop; the '
                    'generator states are saved and restored, but not '
                    'reseeded per epoch')
            return
        loader = runner.train_loop.dataloader
        if getattr(loader, 'batch_sampler', None) is None:
            runner.logger.warning(
                'RNGStateHook: the train dataloader does not fetch batches '
                'of indices, so its workers are not reseeded per batch')
            return
        seeding = loader.worker_init_fn
        if not isinstance(seeding, BatchSeeding):
            seeding = BatchSeeding(self.seed, self._epoch, seeding)
            loader.worker_init_fn = seeding
        if getattr(loader, 'num_workers', 0) == 0:
            seeding.install(loader.dataset)

    def before_train_epoch(self, runner) -> None:
        """Reseed from ``(seed, epoch)``; tell the workers the epoch."""
        if not self._active:
            return
        self._epoch.fill_(runner.epoch)
        seed_all(derive_seed(self.seed, _EPOCH, runner.epoch))

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Reseed from ``(seed, iteration)`` before the training step."""
        if not self._active:
            return
        seed_all(derive_seed(self.seed, _ITER, runner.iter))


__all__ = [
    'RNGStateHook', 'BatchSeeding', 'derive_seed', 'seed_all', 'get_rng_state',
    'set_rng_state', 'RNG_STATE_KEY'
]
