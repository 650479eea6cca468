"""Deploy: ONNX export with its checks, CPU latency under the paper's protocol, and what int8 costs in accuracy.

A finished run's models come through `surgery.runs.trained` (runs come after deploy in the data flow).
"""

from surgery.deploy.bench import BenchSettings, bench
from surgery.deploy.export import ExportResult, Models, export_onnx, models_from_recipe

__all__ = ["BenchSettings", "ExportResult", "Models", "bench", "export_onnx", "models_from_recipe"]
