"""Deploy: ONNX export with its checks, CPU latency under the paper's protocol, and what int8 costs in accuracy.

A finished run's models come through `surgery.runs.trained` (runs come after deploy in the data flow).
"""

from surgery.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BenchSettings": "surgery.deploy.bench",
        "ExportResult": "surgery.deploy.export",
        "Models": "surgery.deploy.export",
        "export_onnx": "surgery.deploy.export",
        "models_from_recipe": "surgery.deploy.export",
    },
)
__all__ = ["BenchSettings", "ExportResult", "Models", "export_onnx", "models_from_recipe"]
