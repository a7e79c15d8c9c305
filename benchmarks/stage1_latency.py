"""Per-window latency of each stage and agent throughput, side by side in one run, on distinct windows.

Builds an XGBoost bundle and a Conv1D bundle on C-MAPSS FD001 (synthetic data if it
is missing), then measures on the same test windows, one call per window:
  stage 1 (XGBoost, 200 trees): a plain C loop over the bundle's edge_predict() (the
    floor), the agent's ctypes call, the TL2cgen Predictor on the same library,
    xgboost inplace_predict and predict_proba, onnxruntime on the model converted by
    onnxmltools (where it converts), and the agent's own per-window records;
  stage 2 (Conv1D, TFLite INT8): see stage2.py;
and agent throughput end to end: `edge-agent run --input test_FD001.txt` (stride 1) on
each bundle, samples/s over its wall time and over its serving time.
Everything runs on one thread. Prints p50/p90/p99, the ratio of each p50 to the stage's
floor and the largest score difference from the stage's reference.

    make bench     (installs .[host,bench]: onnxruntime, onnxmltools, onnx)
    .venv/bin/python benchmarks/stage1_latency.py [--data ../shared/datasets/cmapss] [--no-conv1d] [--json]

Training the Conv1D takes a few minutes on FD001; --no-conv1d measures stage 1 only.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from harness import (
    DEFAULT_DATA,
    HERE,
    agent_latencies,
    agent_run,
    last_value,
    latency_rows,
    load_average,
    load_data,
    measure,
    render,
    throughput_row,
)

from edge_agent.runtimes.trees import TreeStage, board_arch
from edge_convert.quiet import captured_output
from edgectl.console import emit
from edgectl.recipes import cmapss as recipe
from edgectl.windowing import make_windows

FLOOR = "C loop, edge_predict()"
REFERENCE = "xgboost predict_proba"


def c_loop(lib, rows, work):
    """Latencies (µs) of the plain C loop over the same library and rows."""
    exe = work / "predict_loop"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "c" / "predict_loop.c"), "-ldl"], check=True)
    np.ascontiguousarray(rows, dtype=np.float32).tofile(work / "rows.f32")
    subprocess.run(
        [str(exe), str(lib), str(work / "rows.f32"), str(len(rows)), str(rows.shape[1]), str(work / "lat.f64")],
        check=True,
    )
    return np.fromfile(work / "lat.f64", dtype=np.float64) / 1000


def tl2cgen_predictor(lib, model, work):
    """(tl2cgen.Predictor, which library): the bundle's own library (it keeps TL2cgen's exported
    symbols), else one exported by tl2cgen from the same model."""
    import tl2cgen

    from edge_convert.trees import to_treelite

    try:
        return tl2cgen.Predictor(lib, nthread=1), "on the bundle's .so"
    except tl2cgen.TL2cgenError:
        with captured_output():
            exported = tl2cgen.export_lib(to_treelite(model), "gcc", work / "tl2cgen.so", nthread=1)
        return tl2cgen.Predictor(exported, nthread=1), "on a tl2cgen.export_lib library"


def onnx_session(model, n_features):
    """(onnxruntime session, None) for the XGBoost model converted by onnxmltools, or (None, why not)."""
    try:
        import onnxmltools
        import onnxruntime
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as exc:
        return None, f"{exc.name} not installed: pip install -e '.[bench]'"
    try:
        with captured_output():
            onx = onnxmltools.convert_xgboost(model, initial_types=[("input", FloatTensorType([None, n_features]))])
    except Exception as exc:  # the converter raises whatever its operators raise
        return None, f"onnxmltools cannot convert: {type(exc).__name__}: {str(exc)[:80]}"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"]), None


def stage1_runs(result, rows, work):
    """{method: (µs, scores, note)} for the XGBoost bundle on the feature rows."""
    import tl2cgen

    spec = result.manifest["stages"][0]
    lib = (result.bundle_dir / spec["libs"][board_arch()]).resolve()
    model = result.model.set_params(n_jobs=1)
    booster = model.get_booster()
    stage = TreeStage(result.bundle_dir, spec)
    predictor, which = tl2cgen_predictor(lib, model, work)
    runs = {
        FLOOR: (c_loop(lib, rows, work), None, None),
        "agent TreeStage.predict (ctypes)": (*measure(stage.predict, rows, float), None),
        "TL2cgen Predictor, DMatrix per row": (
            *measure(lambda r: predictor.predict(tl2cgen.DMatrix(r[None, :])), rows, last_value),
            which,
        ),
        "TL2cgen Predictor, DMatrix prebuilt": (
            *measure(predictor.predict, [tl2cgen.DMatrix(r[None, :]) for r in rows], last_value),
            which,
        ),
        "xgboost inplace_predict": (*measure(lambda r: booster.inplace_predict(r[None, :]), rows, last_value), None),
        REFERENCE: (*measure(lambda r: model.predict_proba(r[None, :]), rows, last_value), None),
    }
    session, why = onnx_session(model, rows.shape[1])
    if session is None:
        runs["onnxruntime (onnxmltools)"] = (None, None, why)
    else:
        name = session.get_outputs()[1].name  # (label, probabilities)
        call = lambda r: session.run([name], {"input": r[None, :]})[0]  # noqa: E731
        runs["onnxruntime (onnxmltools)"] = (*measure(call, rows, last_value), "TreeEnsembleClassifier, 1 thread")
    return runs


def agent_record_runs(run):
    """The agent's own per-window latencies, from its records of the throughput run."""
    lat = agent_latencies(run)
    scores = np.array([r["score"] for r in run["records"]])
    return {
        "agent records: inference": (lat["inference"], scores, "edge-agent run"),
        "agent records: whole window": (lat["total"], scores, "parse+features+inference"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="C-MAPSS directory (synthetic if missing)")
    parser.add_argument("--no-conv1d", action="store_true", help="stage 1 only: skip training the Conv1D")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgectl-bench-") as tmp:
        result = run_all(args, Path(tmp))
    emit(result, args.json, render)


def run_all(args, work):
    """Build the bundles, then time every method and run the agent on each bundle."""
    data, train, test = load_data(args.data, work)
    say(f"building the XGBoost bundle from {data} ...")
    trees = recipe.build_bundle(train, "xgboost", work / "xgboost")
    neural = None
    if not args.no_conv1d:
        import stage2

        stage2.single_thread_tensorflow()
        say("building the Conv1D bundle (trains for a few minutes on FD001) ...")
        neural = recipe.build_bundle(train, "conv1d", work / "conv1d")
    windows = make_windows(test.rows, trees.manifest, keep_raw=False)
    n_lines = len(test.rows)
    load_before = load_average()  # the timings start here; the builds before them do not count
    say(f"stage 1: timing {len(windows)} distinct windows ...")
    runs1 = stage1_runs(trees, windows.features, work)
    say("agent throughput, XGBoost bundle ...")
    agent1 = agent_run(trees.bundle_dir, test.path, work)
    latency = latency_rows(1, {**runs1, **agent_record_runs(agent1)}, FLOOR, REFERENCE)
    throughput = [throughput_row("xgboost", agent1, n_lines)]
    references = {1: REFERENCE}
    if neural is not None:
        say(f"stage 2: timing {len(windows)} distinct windows ...")
        raw = make_windows(test.rows, neural.manifest, keep_raw=True).raw
        runs2 = stage2.stage2_runs(neural, raw, work)
        say("agent throughput, Conv1D bundle ...")
        agent2 = agent_run(neural.bundle_dir, test.path, work)
        latency += latency_rows(2, {**runs2, **agent_record_runs(agent2)}, stage2.FLOOR, stage2.REFERENCE)
        throughput.append(throughput_row("conv1d", agent2, n_lines))
        references[2] = stage2.REFERENCE
    return {
        "data": str(data),
        "windows": len(windows),
        "features": int(windows.features.shape[1]),
        "load_average": {"before": load_before, "after": load_average()},
        "references": references,
        "latency": latency,
        "throughput": throughput,
    }


def say(msg):
    print(msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
