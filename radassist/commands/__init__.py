"""Command groups of the `radassist` CLI.

``COMMAND_MODULES`` each have ``register(subparsers, formatter_class)``. ``TASK_MODULES`` offer the per-task hooks
of ``radassist train TASK`` / ``radassist evaluate TASK`` (see train_evaluate.py); a module may be in both.
"""

from radassist.commands import (annotation, batch, brain, demo, info, inputs, liver, lung, lung_evaluate,
                                lung_infection, lung_train, mammo, models, segment, serve, synth)

COMMAND_MODULES = (info, inputs, synth, demo, models, lung, liver, brain, mammo, segment, batch, annotation, serve)
TASK_MODULES = (lung_train, lung_evaluate, lung_infection, liver, brain, mammo)
