"""Commands on the user's data and model: init (a spec from a CSV), features (the board's inputs), convert."""

from pathlib import Path

import click

from edge_agent.windows import KINDS_TEXT
from edgectl.commands.options import Choice, json_option, profiles_option, quiet_option
from edgectl.console import Progress, emit
from edgectl.train import MODEL_KINDS

# What a spec's [window] features may name: said by init (which writes one) and features (which computes them).
KINDS_EPILOG = f'Feature kinds ([window] features in the spec; or "raw", the window itself): {KINDS_TEXT}.'


@click.command(epilog=KINDS_EPILOG)
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default="edgectl.toml", show_default=True,
              help="The spec file to write.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def init(data, out, force):
    """Write a commented pipeline spec (edgectl.toml) from DATA, a CSV file with a header line.

    Guesses the stream, time and label columns and lists the numeric columns as the model's
    inputs; check every guess before you use it.
    """
    from edgectl import spec

    spec.init(data, out, force)
    click.echo(f"wrote {out} from the columns of {data}; check it, then: edgectl features {out} --data {data}")


@click.command(epilog=KINDS_EPILOG)
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="CSV file with a header line, as the spec describes.")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="FEATURES.csv (one row per window), or .npz when the spec's features are \"raw\".")  # fmt: skip
@json_option
@quiet_option
def features(spec_path, data, out, as_json, quiet):
    """Write exactly the per-window inputs the board will compute from DATA under SPEC.

    Rows in the order the windows complete (the order the agent answers them): the stream and
    time columns, `label` (class index, 0/1, or the value), then one column per model input.
    Computed by the agent's own parser, preprocessing (fitted on DATA) and window code.
    """
    from edgectl import dataset
    from edgectl import spec as specs

    progress = Progress(quiet)
    spec = specs.load(spec_path)
    if (spec["window"]["features"] == "raw") != (Path(out).suffix == ".npz"):
        raise click.UsageError('--out: .npz for features = "raw", else a .csv file')
    progress.say(f"reading {data} through the agent's parser, preprocessing and windows")
    ds = dataset.load(spec, data)
    dataset.write_features(ds, spec, out)
    inputs = len(ds.sections["features"]["names"]) if ds.stage_input == "features" else list(ds.windows.raw.shape[1:])
    summary = {"out": out, "windows": len(ds.windows), "inputs": inputs, "task": spec["output"]["task"]}
    emit(summary, as_json, _render_features)


def _render_features(summary):
    """'wrote 900 windows (171 inputs each) to ...'; a raw window's shape as '30 x 14', not a Python list."""
    shape = summary["inputs"]
    inputs = " x ".join(map(str, shape)) if isinstance(shape, list) else shape
    return f"wrote {summary['windows']} windows ({inputs} inputs each) to {summary['out']}"


@click.command()
@click.argument("model", type=click.Path(exists=True))
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The pipeline spec (edgectl.toml) the model was trained under.")  # fmt: skip
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="CSV data: preprocessing is fitted on it; parity, golden vectors, drift come from it.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Bundle directory to write.")
@profiles_option
@click.option("--allow-pickle", is_flag=True, help="Load a .joblib/.pkl model (runs the code inside it).")
@click.option("--precision", type=click.Choice(["int8", "float32"]),
              help="Neural models: TFLite full INT8 (default for Keras) or float32; a .tflite as it is.")  # fmt: skip
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False), help="Sign the bundle with this private key.")
@json_option
@quiet_option
def convert(model, spec_path, data, out, profile_names, allow_pickle, precision, sign_key, as_json, quiet):
    """Convert MODEL, a file you trained elsewhere, into a bundle for the board.

    Tree models: XGBoost .json/.ubj, LightGBM .txt, scikit-learn tree ensembles as .skops
    (or .joblib/.pkl with --allow-pickle), compiled to C through Treelite and TL2cgen; the
    compiled model must equal the model's own prediction on every window of --data.
    Neural models: Keras .keras/.h5 to TFLite (INT8 or float32), or a .tflite as it is.
    """
    from edge_convert import bundle
    from edgectl import convert as converter
    from edgectl import inspect_bundle, profiles
    from edgectl.commands.bundles import _signing, show_bundle

    progress = Progress(quiet)
    key = _signing().load_private_key(sign_key) if sign_key else None
    chosen = profiles.choose(profile_names)
    with bundle.staged(out) as work:  # a signature that fails leaves no unsigned bundle behind
        converter.convert(model, spec_path, data, work, chosen, allow_pickle, progress.say, precision)
        if key is not None:
            progress.say(f"signed {out} with key {_signing().sign_bundle(work, key)}")
    show_bundle(inspect_bundle.summary(out), as_json)


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="CSV training data with the spec's label column.")  # fmt: skip
@click.option("--model", "kind", default="xgboost", show_default=True, type=Choice(MODEL_KINDS),
              help="The reference model to train: a tree ensemble on window features, or a neural model "
              "(conv1d, attention) on the raw window.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Bundle directory to write.")
@profiles_option
@json_option
@quiet_option
def train(spec_path, data, kind, out, profile_names, as_json, quiet):
    """Train a reference model on DATA under SPEC, then convert it.

    Cross-validation by stream gives every window an out-of-fold score: a binary task's threshold is
    chosen on those, and they are the validation in the manifest. The final model, trained on every
    window, is written beside the bundle (OUT.model.json, .skops or .keras) and converted exactly as
    `edgectl convert` would. Hold out your own test data and score the bundle on it with `edgectl run`
    or `bench`.
    """
    from edgectl import build, inspect_bundle, profiles
    from edgectl.commands.bundles import show_bundle

    progress = Progress(quiet)
    chosen = profiles.choose(profile_names)
    build.train_bundle(spec_path, data, kind, out, chosen, say=progress.say)
    show_bundle(inspect_bundle.summary(out), as_json)
