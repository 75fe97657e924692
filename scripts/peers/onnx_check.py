"""Peer check of an exported nines model: onnx.checker (full check) and
Python onnxruntime, whose outputs are written for the Rust side to compare
with its own `ort` run.

usage: onnx_check.py MODEL.onnx INPUTS.json OUT.json
INPUTS.json: {"image": [floats], "image_shape": [...], "speed": float}
OUT.json: {"outputs": {name: [floats]}, "shapes": {name: [...]},
           "metadata": {key: value}, "opset": int, "ir_version": int}
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> None:
    model_path, inputs_path, out_path = sys.argv[1:4]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    with open(inputs_path) as f:
        given = json.load(f)
    image = np.asarray(given["image"], dtype=np.float32).reshape(given["image_shape"])
    speed = np.asarray([[given["speed"]]], dtype=np.float32)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, {"image": image, "speed": speed})
    out = {
        "outputs": {n: r.reshape(-1).tolist() for n, r in zip(names, results)},
        "shapes": {n: list(r.shape) for n, r in zip(names, results)},
        "inputs": {i.name: i.shape for i in session.get_inputs()},
        "metadata": {p.key: p.value for p in model.metadata_props},
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "ir_version": model.ir_version,
    }
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
