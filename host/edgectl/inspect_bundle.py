"""`edgectl inspect`: what a bundle holds, how big it is, and the checks recorded at build time."""

from pathlib import Path

from edge_agent.errors import AgentError, BundleError
from edge_agent.manifest import load_bundle
from edge_agent.selftest import read_golden
from edge_agent.signature import describe_signature
from edgectl import evaluate
from edgectl.errors import EdgectlError


def summary(bundle_dir, source=None):
    """Verify a bundle and describe it: stages, model file sizes, parity and INT8 reports.

    source: what the user named, when it is not bundle_dir: the .tar.gz that bundle_dir was unpacked from.
    """
    bundle_dir = Path(bundle_dir)
    source = Path(source or bundle_dir)
    try:
        manifest = load_bundle(bundle_dir)
    except BundleError as exc:
        raise EdgectlError(str(exc)) from None
    self_test = _self_test(bundle_dir, manifest)
    archive = source if source.is_file() else bundle_dir.with_name(bundle_dir.name + ".tar.gz")
    stages = []
    for stage in manifest["stages"]:
        files = list(stage.get("libs", {}).values()) + ([stage["file"]] if "file" in stage else [])
        stages.append(
            {
                "name": stage["name"],
                "kind": stage["kind"],
                "input": stage["input"],
                "threshold": stage["threshold"],
                "model_bytes": max((bundle_dir / f).stat().st_size for f in files),
                "archs": sorted(stage.get("libs", {})) or ["any"],
                "parity": stage.get("parity"),
                # version 3: "conversion" (Keras -> TFLite checks); before it, "int8_report"
                "conversion": stage.get("conversion") or stage.get("int8_report"),
                "validation": stage.get("validation"),
            }
        )
    return {
        "bundle_id": manifest["bundle_id"],
        "path": str(source),
        "format_version": manifest["format_version"],
        "checksums": "ok",
        "self_test": self_test,
        "signature": describe_signature(bundle_dir),
        "files": len(manifest["files"]),
        "bundle_bytes": sum((bundle_dir / f).stat().st_size for f in manifest["files"]),
        "archive_bytes": archive.stat().st_size if archive.exists() else None,
        "window": manifest["window"],
        "features": len(manifest["features"]["names"]),
        "inputs": manifest["input"]["features"],
        "stages": stages,
        "cascade": manifest.get("cascade"),
    }


def verdict(info):
    """{"status": "ok" | "fail", "problems": [...]}: what `edgectl inspect` exits 3 on, for a script to gate on.
    Problems: "over-budget" (a budget of --profile fails), "signature-mismatch" (manifest.sig does not match
    the manifest under the key it names). A self-test not run here (another arch) is not a problem."""
    problems = []
    if info.get("budgets", {}).get("status") == "fail":
        problems.append("over-budget")
    if (info.get("signature") or {}).get("valid") is False:
        problems.append("signature-mismatch")
    return {"status": "fail" if problems else "ok", "problems": problems}


def warnings(info):
    """What a bundle's recorded scores must not hide: no positive window in what it was scored on, or F1 0."""
    out = []
    for stage in info["stages"]:
        val = stage["validation"] or {}
        what = f"stage {stage['name']}, scored {method_text(val)}"
        out += evaluate.score_warnings(val, what) + evaluate.score_warnings(val.get("alarm"), f"{what}, its alarm")
    return out


def _self_test(bundle_dir, manifest):
    """The agent's own start-up checks and golden vectors, run here where the stages load on this machine.

    A bundle the board would refuse is an error; stages this machine cannot run (another arch,
    no TFLite runtime) leave {"status": "not run here", "why"} after the golden file's own checks.
    """
    from edge_agent.agent import start  # numpy, ctypes; LiteRT only for a TFLite stage

    try:
        read_golden(Path(bundle_dir) / manifest["golden"]["file"])
        _, info = start(bundle_dir, trusted_keys=str(Path(bundle_dir) / ".no-trusted-keys"))
    except BundleError as exc:
        raise EdgectlError(f"{bundle_dir}: {exc}") from None
    except AgentError as exc:
        return {"status": "not run here", "why": str(exc)}
    return {"status": "ok", **info["self_test"], **({"degraded": info["degraded"]} if "degraded" in info else {})}


def band_text(band, digits=4):
    """A cascade band as people read it: '[0.1680, 0.9140)', or 'none' when it is empty (low >= high:
    stage 1 answers every window), never a half-open interval with nothing in it."""
    if band["low"] >= band["high"]:
        return "none"
    return f"[{band['low']:.{digits}f}, {band['high']:.{digits}f})"


def validation_text(val):
    """'F1 0.932 out-of-fold', 'accuracy 0.91, macro-F1 0.90 in-sample', ...: the scores and how they were had."""
    names = {"f1": "F1", "accuracy": "accuracy", "macro_f1": "macro-F1", "mae": "MAE", "rmse": "RMSE"}
    scores = ", ".join(f"{label} {val[key]:.3f}" for key, label in names.items() if key in val)
    if "alarm" in val:  # a regression's alarm: "alarm F1 0.97 at <= 30.9"
        a = val["alarm"]
        scores += f", alarm F1 {a['f1']:.3f} at {'<=' if a['direction'] == 'below' else '>='} {a['threshold']:.4g}"
    how = method_text(val)
    return f"{scores} ({how})" if scores else how or "-"


def method_text(val):
    """How a stage's validation scores were had, short: 'out-of-fold', 'on --data', or the method as recorded."""
    how = val.get("method", "")
    return "out-of-fold" if how.startswith("out-of-fold") else "on --data" if how.startswith("on the windows") else how
