"""`radassist train TASK` and `radassist evaluate TASK`: dispatch to the task command modules that offer them.

A task command module (radassist/commands/<task>.py) takes part by defining any of
``TRAIN_TASKS``/``EVALUATE_TASKS`` (task names it serves, e.g. ``("lung", "lung-infection")``) together with
``add_train_arguments(task, parser)``/``run_train(task, args)`` and ``add_evaluate_arguments(task, parser)``/
``run_evaluate(task, args)``. Heavy imports stay inside the run functions so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import ModuleType


def _under_torchrun(runner: Callable[[str, argparse.Namespace], int]) -> Callable[[str, argparse.Namespace], int]:
    """A training run started by torchrun joins its process group first (DDP; see radassist.runtime.distributed);
    a plain single process runs unchanged."""
    def run(task: str, args: argparse.Namespace) -> int:
        from radassist.runtime.distributed import distributed_command

        with distributed_command(args):
            return runner(task, args)
    return run


def _register_kind(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter],
                   kind: str, task_modules: tuple[ModuleType, ...]) -> None:
    providers = [(task, module) for module in task_modules for task in getattr(module, f"{kind.upper()}_TASKS", ())]
    if not providers:
        return
    verb = "train a model" if kind == "train" else "evaluate predictions against ground truth"
    parser = commands.add_parser(kind, help=f"{verb} (per task)", formatter_class=formatter,
                                 description=f"{verb.capitalize()}. Run 'radassist {kind} TASK --help' for a "
                                             "task's options.")
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for task, module in providers:
        task_parser = tasks.add_parser(task, help=f"{kind} {task}", formatter_class=formatter,
                                       description=(getattr(module, f"{kind.upper()}_HELP", {}).get(task)
                                                    or f"{verb.capitalize()}: {task}."))
        getattr(module, f"add_{kind}_arguments")(task, task_parser)
        runner = getattr(module, f"run_{kind}")
        if kind == "train":
            runner = _under_torchrun(runner)
        task_parser.set_defaults(handler=lambda args, runner=runner, task=task: runner(task, args))


def register_all(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter],
                 task_modules: tuple[ModuleType, ...]) -> None:
    _register_kind(commands, formatter, "train", task_modules)
    _register_kind(commands, formatter, "evaluate", task_modules)
