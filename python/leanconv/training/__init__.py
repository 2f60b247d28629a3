"""What every trainer of leanconv shares: one checkpoint format, one resume policy, the loop helpers.

- :mod:`.checkpoint` - :func:`save_checkpoint` / :func:`read_checkpoint` /
  :func:`restore_checkpoint`: one format with a version tag (:data:`FORMAT`),
  model, optimizer and scheduler states and the random generators' states,
  written atomically;
- :mod:`.resume` - :func:`start_or_resume` (the ``--resume`` / ``--force``
  behaviour) and :func:`check_resume` (a resumed run keeps its checkpoint's
  settings; the error names each one that differs);
- :mod:`.loop` - :func:`epoch_generator` (the seeded order of an epoch),
  :func:`progress_bar`;
- :mod:`.distributed` - :class:`Distributed`, the process group under torchrun.

The trainers themselves: :mod:`leanconv.surrogate.train` (wave surrogates,
``leanconv train``) and :mod:`leanconv.classify.train` (classifiers,
``leanconv train-classifier``).  This package knows no model family.
"""
from .checkpoint import (FORMAT, KINDS, CheckpointError, read_checkpoint, restore_checkpoint, rng_state,
                         save_checkpoint, set_rng_state)
from .distributed import Distributed
from .loop import epoch_generator, progress_bar
from .resume import changed_settings, check_resume, resume_refusal, start_or_resume

__all__ = ["FORMAT", "KINDS", "CheckpointError", "read_checkpoint", "restore_checkpoint", "rng_state",
           "save_checkpoint", "set_rng_state", "Distributed", "epoch_generator", "progress_bar",
           "changed_settings", "check_resume", "resume_refusal", "start_or_resume"]
