"""Model runtimes the agent can serve a stage with: one module per kind of model file."""

from edge_agent.runtimes.litert import TFLiteStage
from edge_agent.runtimes.trees import TreeStage

RUNTIMES = {"tree-lib": TreeStage, "tflite": TFLiteStage}


def load_stage(bundle_dir, stage):
    """Load the runtime for one manifest stage; raises AgentError if it cannot."""
    return RUNTIMES[stage["kind"]](bundle_dir, stage)
