"""Deploy: ONNX export with its checks, CPU latency under the paper's protocol, and what int8 costs in accuracy."""

from surgery.deploy.bench import BenchSettings, bench
from surgery.deploy.export import ExportResult, Models, export_onnx, load_models, models_from_recipe, models_from_run

__all__ = ["BenchSettings", "ExportResult", "Models", "bench", "export_onnx", "load_models", "models_from_recipe", "models_from_run"]
