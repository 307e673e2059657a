"""Command groups of the `radassist` CLI; each module has ``register(subparsers, formatter_class)``."""

from radassist.commands import demo, info, inputs, models, synth

COMMAND_MODULES = (info, inputs, synth, demo, models)
