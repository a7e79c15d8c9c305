"""Prometheus metrics of the agent (prometheus_client): a node_exporter textfile, written atomically,
and/or /metrics on a loopback port. Fed the record lines the agent writes, as the MQTT publisher is.

  edge_agent_inference_duration_seconds{stage}    histogram of a window's whole agent time (latency_us.total)
  edge_agent_predictions_total{stage,class}        class: the class name for multiclass bundles, else ""
  edge_agent_input_errors_total{reason}            bad input lines by reason
  edge_agent_drift_active{feature}                 1 while the PSI monitor says the input feature drifts, else 0
  edge_agent_bundle_info{bundle_id,signer,agent_version}
  process_resident_memory_bytes and the other process_* metrics of prometheus_client
"""

import json
import time

# A window takes tens of microseconds (trees) to tens of milliseconds (INT8 on a small board).
BUCKETS = (2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)
WRITE_EVERY_S = 1.0


class Metrics:
    def __init__(self, textfile=None, port=None):
        import prometheus_client as prom  # only agents that export metrics need it

        self.prom, self.textfile = prom, textfile
        self.registry = registry = prom.CollectorRegistry()
        prom.ProcessCollector(registry=registry)
        self.duration = prom.Histogram("edge_agent_inference_duration_seconds", "Agent time per window, by stage",
                                       ["stage"], buckets=BUCKETS, registry=registry)  # fmt: skip
        self.predictions = prom.Counter("edge_agent_predictions_total", "Windows answered, by stage and class",
                                        ["stage", "class"], registry=registry)  # fmt: skip
        self.errors = prom.Counter("edge_agent_input_errors_total", "Bad input lines, by reason", ["reason"],
                                   registry=registry)  # fmt: skip
        self.drift = prom.Gauge("edge_agent_drift_active", "1 while the feature drifts", ["feature"], registry=registry)
        self.info = prom.Info("edge_agent_bundle", "The bundle served", registry=registry)
        self._written = 0.0
        if port is not None:
            prom.start_http_server(port, addr="127.0.0.1", registry=registry)

    def write(self, text):
        for line in text.splitlines():
            if line.startswith('{"type":"prediction"'):
                rec = json.loads(line)
                self.duration.labels(rec["stage"]).observe(rec["latency_us"]["total"] / 1e6)
                self.predictions.labels(rec["stage"], str(rec.get("class", ""))).inc()
            elif line.startswith('{"type":"error"'):
                self.errors.labels(json.loads(line)["reason"]).inc()
            elif line.startswith('{"type":"drift"'):
                self._drift(json.loads(line))
            elif line.startswith('{"type":"start"'):
                rec = json.loads(line)
                self.info.info({"bundle_id": rec["bundle_id"], "signer": rec.get("signed_by") or "",
                                "agent_version": rec.get("agent_version", "")})  # fmt: skip
        if self.textfile and time.monotonic() - self._written >= WRITE_EVERY_S:
            self.save()

    def _drift(self, rec):
        """PSI names the input features that start or stop drifting (a score shift names none)."""
        for feature in rec.get("features") or ():  # {name: psi} when they start, [names] when they clear
            self.drift.labels(feature).set(1 if rec.get("state") == "drift" else 0)

    def flush(self):
        """Nothing to flush: the textfile is written at most every WRITE_EVERY_S, and on close."""

    def save(self):
        """The textfile, written atomically (prometheus_client writes a temporary file and renames it)."""
        self.prom.write_to_textfile(self.textfile, self.registry)
        self._written = time.monotonic()

    def close(self):
        if self.textfile:
            self.save()
