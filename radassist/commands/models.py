"""`radassist models`: list the catalogue, install, import your own weights, verify, remove, locate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radassist.errors import DownloadError, InputError, RadAssistError
from radassist.runtime import model_status, paths
from radassist.runtime.catalog import PLANNED, USER_IMPORT, Catalog, ModelEntry, installed_path, load_catalog
from radassist.runtime.model_status import find_entry
from radassist.runtime.registry import is_installed


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser(
        "models", help="list, install, import, verify and remove models", formatter_class=formatter,
        description="Manage the models RadAssist runs. The catalogue is Resources/models.json, the files in "
                    f"${paths.CATALOG_ENV} and the models you imported; installed files live in the models "
                    f"folder (set ${paths.CACHE_ENV} to move it).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="catalogue models with their install status", formatter_class=formatter)
    listing.add_argument("--task", help="only models for this task (a prefix works: --task liver)")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    listing.set_defaults(handler=run_list)

    install = actions.add_parser(
        "install", help="download a model's weights and check their hashes", formatter_class=formatter,
        description="Download a catalogue model's files and check each one's hash (sha256, or the git blob id "
                    "its repository lists) before it is used. A model whose licence must be accepted first (the "
                    "published GMIC checkpoints, GNU AGPL-3.0) shows the licence and asks; in a script without a "
                    "terminal, --accept-license says you accept it. An ensemble (gmic-ensemble) installs all its "
                    "members.")
    install.add_argument("id", metavar="ID", help="model id from 'radassist models list'")
    install.add_argument("--version", help="model version (default: the highest)")
    install.add_argument("--accept-license", "--accept-licence", dest="accept_license", action="store_true",
                         help="accept the model's licence without being asked (it is still printed)")
    install.set_defaults(handler=run_install)

    imports = actions.add_parser(
        "import", help="install your own weights (torch.save state dict or .safetensors)", formatter_class=formatter,
        description="Install weights you trained or obtained. TARGET is a task (a new model of yours for it, "
                    "labelled like the task's catalogue model) or a catalogue model id (the file becomes that "
                    "model's weights, e.g. a GMIC checkpoint you downloaded). Files are read with "
                    "torch.load(weights_only=True): pickles holding Python objects are refused.")
    imports.add_argument("target", metavar="TARGET", help="task (e.g. liver-segmentation) or catalogue model id")
    imports.add_argument("file", type=Path, metavar="FILE", help="weights file: .pt/.pth/.ckpt state dict or "
                                                                 ".safetensors")
    imports.add_argument("--id", dest="model_id", help="id of the new model (default: user-TASK-ARCHITECTURE)")
    imports.add_argument("--architecture", help="network architecture of the weights, e.g. monai-unet "
                                                "(default: the task's catalogue model's)")
    imports.add_argument("--config", help="the network's config as JSON text or a .json file, e.g. "
                                          "'{\"spatial_dims\": 3, \"out_channels\": 3}'")
    imports.add_argument("--version", default="1.0.0", help="version of the new model")
    imports.add_argument("--title", help="title shown in 'radassist models list'")
    imports.set_defaults(handler=run_import)

    verify = actions.add_parser("verify", help="check installed files against their hashes", formatter_class=formatter)
    verify.add_argument("id", metavar="ID", nargs="?", help="one model (default: every installed model)")
    verify.add_argument("--version", help="model version (default: every installed version)")
    verify.set_defaults(handler=run_verify)

    remove = actions.add_parser("remove", help="delete an installed model", formatter_class=formatter)
    remove.add_argument("id", metavar="ID")
    remove.add_argument("--version", help="only this version (default: every installed version)")
    remove.set_defaults(handler=run_remove)

    where = actions.add_parser("path", help="print the folder of an installed model", formatter_class=formatter)
    where.add_argument("id", metavar="ID")
    where.add_argument("--version", help="model version (default: the highest installed)")
    where.set_defaults(handler=run_path)


# --- helpers -----------------------------------------------------------------------------------------------------

def _installed_entries(catalog: Catalog, model_id: str | None, version: str | None) -> list[ModelEntry]:
    if model_id is not None and model_id in catalog.ids() and catalog.get(model_id).is_ensemble:
        members = catalog.members(find_entry(model_id, version, catalog))  # an ensemble's files are its members'
        return [entry for member in members for entry in _installed_entries(catalog, member.id, None)]
    entries = [e for e in catalog if (model_id is None or e.id == model_id) and
               (version is None or e.version == version) and installed_path(e).is_dir()]
    if model_id is not None and not entries:
        find_entry(model_id, version, catalog)  # unknown id or version: say which exist
        raise InputError(None, f"model {model_id}{' ' + version if version else ''} is not installed; "
                               f"install it with 'radassist models install {model_id}'")
    return entries


# --- actions -----------------------------------------------------------------------------------------------------

def run_list(args: argparse.Namespace) -> int:
    rows = model_status.model_rows(args.task)
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return 0
    header = ("ID", "VERSION", "TASK", "STATUS", "SIZE", "LICENCE", "TITLE")
    table = [header] + [(r.id, r.version, r.task, r.status, r.size_text, r.licence, r.title) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    print(f"\n{model_status.cache_folder().how_to_change}")
    return 0


def _licence_accepted(entry: ModelEntry, given: bool) -> bool:
    """Show the licence of a model that needs consent and ask for it on a terminal; ``given``: --accept-license.
    Without a terminal and without the option the answer is no (a script must say so explicitly)."""
    from radassist.runtime.download import licence_terms

    terms = licence_terms(entry)
    print(terms.text, file=sys.stderr)
    if given:
        print("\nLicence accepted with --accept-license.", file=sys.stderr)
        return True
    if not sys.stdin.isatty():
        raise RadAssistError(f"model {entry.label} is installed only once you accept its licence ({terms.name}, "
                             f"printed above); this is not an interactive terminal, so nobody could be asked: "
                             f"run the command again with --accept-license if you accept it")
    print(f"\nDo you accept the licence of {entry.label} ({terms.name})? [y/N] ", end="", file=sys.stderr,
          flush=True)  # with the licence, on stderr: stdout stays the command's result
    try:
        answer = input()
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def run_install(args: argparse.Namespace) -> int:
    from radassist.runtime.download import ModelUnavailable, install_model
    from radassist.runtime.progress import tqdm_progress

    catalog = load_catalog()
    entry = find_entry(args.id, args.version, catalog)
    if entry.status == PLANNED:
        raise RadAssistError(model_status.planned_help(entry))
    accepted = False
    if entry.consent_required and not is_installed(entry):
        accepted = _licence_accepted(entry, args.accept_license)
        if not accepted:
            raise RadAssistError(f"model {entry.label} was not installed: its licence was not accepted")
    try:
        with tqdm_progress(f"installing {entry.label}") as progress:
            folder = install_model(entry, progress, accept_licence=accepted, catalog=catalog)
    except ModelUnavailable as error:
        if entry.status == USER_IMPORT:
            raise RadAssistError(model_status.unavailable_help(entry, str(error))) from None
        raise
    except DownloadError as error:
        raise DownloadError(error.url, f"{error} Or download it with a browser and run 'radassist models import "
                                       f"{error.model_id or entry.id} FILE'.") from None
    if entry.is_ensemble:
        print(f"installed {entry.label}: {', '.join(m.label for m in catalog.members(entry))} in {folder}")
    else:
        print(f"installed {entry.label} in {folder}")
    return 0


def _config_argument(text: str | None) -> dict | None:
    if text is None:
        return None
    candidate = Path(text).expanduser()
    source = candidate if candidate.suffix.lower() == ".json" or candidate.is_file() else None
    try:
        value = json.loads(candidate.read_text(encoding="utf-8") if source else text)
    except OSError as error:
        raise InputError(candidate, f"cannot read the config file ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise InputError(source, f"--config is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise InputError(source, "--config must be a JSON object of config fields")
    return value


def run_import(args: argparse.Namespace) -> int:
    from radassist.runtime.registry import import_model

    try:
        folder = import_model(args.target, args.file, args.model_id, architecture=args.architecture,
                              config=_config_argument(args.config), version=args.version, title=args.title)
    except InputError as error:
        if "does not fit architecture" not in error.problem:
            raise
        raise InputError(error.path, error.problem + "\n  (give the network's constructor arguments with --config, "
                                                     "or the right --architecture)") from None
    print(f"imported {args.file} into {folder}")
    return 0


def _verify_entry(entry: ModelEntry) -> list[tuple[str, str, bool]]:
    """(file, finding, ok) for every file of an installed entry, checked against every hash the catalogue gives
    (sha256, git blob id), or the sha256 its checkpoint's config.json recorded."""
    from radassist.runtime.checkpoints import CONFIG_NAME
    from radassist.runtime.download import HASH_NAMES, file_hashes

    folder = installed_path(entry)
    recorded: dict[str, str] = {}
    config_file = folder / CONFIG_NAME
    if config_file.is_file():
        try:
            record = json.loads(config_file.read_text(encoding="utf-8"))
            if isinstance(record, dict) and record.get("sha256") and record.get("weights"):
                recorded[str(record["weights"])] = str(record["sha256"]).lower()
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # the catalogue's own hash of config.json, if any, reports the damage
    findings = []
    for model_file in entry.files:
        path = folder / model_file.name
        expected = model_file.hashes or ({"sha256": recorded[model_file.name]} if model_file.name in recorded
                                         else {})
        if not path.is_file():
            findings.append((model_file.name, "missing", False))
            continue
        if not expected:
            findings.append((model_file.name, "present (no hash recorded to check it against)", True))
            continue
        actual = file_hashes(path, expected)
        wrong = [kind for kind, value in expected.items() if actual[kind] != value]
        if wrong:
            findings.append((model_file.name, f"{HASH_NAMES[wrong[0]]} MISMATCH (expected {expected[wrong[0]]})",
                             False))
        else:
            findings.append((model_file.name, f"ok, {' and '.join(HASH_NAMES[k] for k in expected)} "
                                              f"match{'es' if len(expected) == 1 else ''}", True))
    return findings


def run_verify(args: argparse.Namespace) -> int:
    entries = _installed_entries(load_catalog(), args.id, args.version)
    if not entries:
        print(f"no models installed in {paths.models_dir()}")
        return 0
    problems = []
    for entry in entries:
        for name, finding, ok in _verify_entry(entry):
            print(f"{entry.label}  {name}: {finding}")
            if not ok:
                problems.append(f"{entry.label} {name}")
    if problems:
        raise RadAssistError(f"{len(problems)} file(s) failed verification ({', '.join(problems)}); reinstall with "
                             f"'radassist models install ID' or import the weights again")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    for folder in model_status.remove_model(args.id, args.version):
        print(f"removed {args.id} {folder.name} ({folder})")
    return 0


def run_path(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    installed = [e for e in _installed_entries(catalog, args.id, args.version) if is_installed(e)]
    if not installed:
        raise InputError(None, f"model {args.id} is not completely installed; run 'radassist models install "
                               f"{args.id}' (or import its weights)")
    ensemble = args.id in catalog.ids() and catalog.get(args.id).is_ensemble  # one folder per member
    if ensemble and not is_installed(catalog.get(args.id)):
        raise InputError(None, f"model {args.id} is not completely installed; run 'radassist models install "
                               f"{args.id}'")
    for entry in installed if ensemble else installed[-1:]:
        print(installed_path(entry))
    return 0
