"""Runs an exported ONNX model with onnxruntime (CPU) for tests/test_onnx.cpp.

    run_onnx.py MODEL IN.npy [IN2.npy ...] OUT.npy
        Feeds the arrays to the model's inputs in order (float32; int64 for an int64 input,
        a language model's token ids) and writes its first output to OUT.npy, output k > 0
        (a language model's final state) to OUT.k.npy.
    run_onnx.py --describe MODEL
        Prints the model's inputs, outputs (names and shapes, symbolic axes as strings),
        producer, graph name and metadata as JSON.

Loading the model into an onnxruntime session is itself a validity check. Exit status 3
means the test environment is incomplete (numpy or onnxruntime missing: run scripts/setup).
"""

import json
import sys


def fail_setup(what):
    print(f"run_onnx.py: {what} is not importable from {sys.executable}; "
          "run scripts/setup to create the test venv (.venv) from requirements-test.txt",
          file=sys.stderr)
    sys.exit(3)


try:
    import numpy as np
except ImportError:
    fail_setup("numpy")
try:
    import onnxruntime as ort
except ImportError:
    fail_setup("onnxruntime")


def session(model):
    options = ort.SessionOptions()
    # Tests run several processes on few cores.
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def describe(model):
    s = session(model)
    meta = s.get_modelmeta()

    def info(args):
        return [{"name": a.name, "shape": list(a.shape), "type": a.type} for a in args]

    print(json.dumps({
        "inputs": info(s.get_inputs()),
        "outputs": info(s.get_outputs()),
        "producer": meta.producer_name,
        "graph_name": meta.graph_name,
        "metadata": dict(meta.custom_metadata_map),
        "onnxruntime": ort.__version__,
    }, sort_keys=True))


def run(model, inputs, output):
    s = session(model)
    names = [i.name for i in s.get_inputs()]
    types = [i.type for i in s.get_inputs()]
    if len(names) != len(inputs):
        print(f"run_onnx.py: the model has inputs {names}, got {len(inputs)} arrays",
              file=sys.stderr)
        sys.exit(2)
    feeds = {}
    for name, kind, path in zip(names, types, inputs):
        array = np.load(path)
        expected = np.int64 if kind == "tensor(int64)" else np.float32
        if array.dtype != expected:
            print(f"run_onnx.py: {path} has dtype {array.dtype}, expected {np.dtype(expected)} "
                  f"for input {name}", file=sys.stderr)
            sys.exit(2)
        feeds[name] = array
    results = s.run(None, feeds)
    np.save(output, np.ascontiguousarray(results[0], dtype="<f4"))
    stem = output[:-4] if output.endswith(".npy") else output
    for k, result in enumerate(results[1:], start=1):
        np.save(f"{stem}.{k}.npy", np.ascontiguousarray(result, dtype="<f4"))


def main(argv):
    if len(argv) == 3 and argv[1] == "--describe":
        describe(argv[2])
        return 0
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    run(argv[1], argv[2:-1], argv[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
