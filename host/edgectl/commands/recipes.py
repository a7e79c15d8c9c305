"""End-to-end commands: the demo, the example recipes, and the synthetic fleet."""

from pathlib import Path

import click

from edgectl.commands.options import SUBSETS, TARGETS, Choice, json_option, quiet_option
from edgectl.console import Progress, emit, table
from edgectl.train import TREE_KINDS

TARGET_HELP = f"The board to serve on: {TARGETS}. Default: a local board in WORKDIR/board."


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="Real C-MAPSS files instead of synthetic.")
@click.option("--subset", default="FD001", show_default=True, help=f"C-MAPSS subset: {SUBSETS}.")
@click.option("--workdir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the data, the bundles and (without --board) the board go.")  # fmt: skip
@click.option("--board", type=click.Path(file_okay=False), help="Local board directory (default: WORKDIR/board).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 20),
              help="Train each model with seeds 0..N-1: F1 as mean and sd over them (training is noisy).")  # fmt: skip
@json_option
@quiet_option
def demo(data, subset, workdir, board, seeds, as_json, quiet):
    """The main job end to end: data -> XGBoost, Conv1D and cascade bundles -> local board -> agent -> table."""
    from edgectl.recipes import cmapss as recipe
    from edgectl.targets.local import LocalTarget

    target = LocalTarget(board or Path(workdir) / "board")
    result = recipe.run(
        workdir, data, subset, target, recipe.DEMO_MODELS, recipe.DEMO_CASCADES, progress=Progress(quiet), seeds=seeds
    )
    emit(result, as_json, _render_recipe)


@click.group()
def example():
    """Recipes that reproduce the reference results: train, build, serve on a board, score the agent's records."""


@example.command("cmapss")
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="Real C-MAPSS files instead of synthetic.")
@click.option("--subset", default="FD001", show_default=True, help=f"C-MAPSS subset: {SUBSETS}.")
@click.option("--target", metavar="TARGET", help=TARGET_HELP)
@click.option("--workdir", default="out/example-cmapss", show_default=True, type=click.Path(file_okay=False),
              help="Where the data, the bundles and the local board go.")  # fmt: skip
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 20),
              help="Train each model with seeds 0..N-1: F1 as mean and sd over them (training is noisy).")  # fmt: skip
@click.option("--model", "models", multiple=True,
              help="Only this model of the recipe (repeatable; default all): xgboost-tiny, lightgbm, lightgbm-rul, "
                   "xgboost, conv1d, attention. A cascade runs when both its stages do.")  # fmt: skip
@json_option
@quiet_option
def example_cmapss(data, subset, target, workdir, seeds, models, as_json, quiet):
    """XGBoost (30 trees of depth 2, and 200 of depth 4), LightGBM (and as a regression on the cycles left),
    Conv1D INT8, attention INT8 and two cascades on C-MAPSS with history features, split by engine unit: the
    table of bundle size, F1 (all test windows and the last window per unit), p50/p99 latency, fast-path share
    and the escalation calibrated out of fold."""
    from edgectl.errors import did_you_mean
    from edgectl.recipes import cmapss as recipe
    from edgectl.targets import parse_target

    board = parse_target(target) if target else None
    unknown = [kind for kind in models if kind not in recipe.MODELS]
    if unknown:
        choices = ", ".join(recipe.MODELS)
        hint = did_you_mean(unknown[0], recipe.MODELS)
        raise click.BadParameter(f"{unknown[0]!r}{hint}; the recipe's models: {choices}", param_hint="--model")
    models = models or recipe.MODELS
    cascades = [pair for pair in recipe.CASCADES if set(pair) <= set(models)]
    result = recipe.run(workdir, data, subset, board, models, cascades, progress=Progress(quiet), seeds=seeds)
    emit(result, as_json, _render_recipe)


@example.command("secom")
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="Directory of the UCI SECOM files.")
@click.option("--model", "kind", default="xgboost", show_default=True, type=Choice(TREE_KINDS),
              help="Tree model family.")  # fmt: skip
@click.option("--target", metavar="TARGET", help=TARGET_HELP)
@click.option("--workdir", default="out/example-secom", show_default=True, type=click.Path(file_okay=False),
              help="Where the data, the bundles and the local board go.")  # fmt: skip
@json_option
@quiet_option
def example_secom(data, kind, target, workdir, as_json, quiet):
    """A tree model on UCI SECOM (secom.data, secom_labels.data; default: synthetic data of the same shape),
    F1 by stratified 5-fold CV from the agent's records of each held-out fold."""
    from edgectl.recipes import secom as recipe
    from edgectl.targets import parse_target

    board = parse_target(target) if target else None
    result = recipe.run(workdir, data, board, kind, progress=Progress(quiet))
    emit(result, as_json, _render_secom)


def _render_secom(result):
    from edgectl.recipes import secom as recipe

    s = result["summary"]
    return (
        f"data: {result['data']}\nboard: {result['board']}\nmodel: {result['model']}\n\n"
        + table(result["folds"], recipe.COLUMNS)
        + f"\n\nF1 {s['f1_mean']:.3f} ± {s['f1_sd']:.3f} (min {s['f1_min']:.3f}, max {s['f1_max']:.3f}): {s['method']}"
    )


def _render_recipe(result):
    from edgectl.recipes import cmapss as recipe

    head = f"data: {result['data']} ({result['subset']})\nboard: {result['board']}\n"
    head += f"seeds: {result['seeds']} (F1: the mean, F1 sd: over the seeds)\n\n" if result["seeds"] > 1 else "\n"
    return head + recipe.results_table(result)


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--subset", default="FD001", show_default=True, help="Name used in the file names.")
@click.option("--train-units", default=60, show_default=True, type=click.IntRange(min=1),
              help="cmapss: engines run to failure (train_SUBSET.txt).")  # fmt: skip
@click.option("--test-units", default=40, show_default=True, type=click.IntRange(min=1),
              help="cmapss: engines cut off before failure, and their life left (test_, RUL_SUBSET.txt).")  # fmt: skip
@click.option("--conditions", default=1, show_default=True, type=click.IntRange(min=1),
              help="Operating conditions (FD002-like: 6).")  # fmt: skip
@click.option("--seed", default=7, show_default=True, type=click.IntRange(min=0),
              help="Random seed: the same seed writes the same files.")  # fmt: skip
@click.option("--dataset", default="cmapss", show_default=True, type=click.Choice(["cmapss", "vibration"]),
              help="cmapss: a turbofan fleet in the C-MAPSS files; vibration: vibration.csv of pumps (a header, "
              "ISO times, 3-axis vibration, temperature, a state and a wear percentage).")  # fmt: skip
@click.option("--machines", default=6, show_default=True, type=click.IntRange(1, 1000), help="vibration: machines.")
@click.option("--samples", default=1200, show_default=True, type=click.IntRange(1, 10**7),
              help="vibration: samples per machine, one a second.")  # fmt: skip
def synth(out_dir, subset, train_units, test_units, conditions, seed, dataset, machines, samples):
    """Write synthetic data to OUT_DIR: a C-MAPSS fleet, or a vibration CSV as a user's sensors log it."""
    if dataset == "vibration":
        from edgectl.data import vibration

        path = vibration.write(Path(out_dir) / "vibration.csv", machines, samples, seed)
        click.echo(f"wrote {path}")
        return
    from edgectl.data import synthetic

    path = synthetic.write_subset(out_dir, subset, train_units, test_units, conditions, seed)
    click.echo(f"wrote train_{subset}.txt, test_{subset}.txt, RUL_{subset}.txt to {path}")
