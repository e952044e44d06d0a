"""Reads the scalars of a TensorBoard log directory with tensorboard's own event reader, for
tests/test_tensorboard.cpp: the event files cellgraph writes itself must load in the real
reader (framing, CRCs, Event encoding) with the values it logged.

    read_scalars.py LOGDIR
        Prints one line per scalar event: STEP TAB TAG TAB VALUE (VALUE as repr of the
        float32 read back, so it converts back exactly).

Exit status 3: tensorboard is not importable (the test skips and says to run scripts/setup).
"""

import sys


def main():
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as e:
        print(f"read_scalars.py: tensorboard is not importable from {sys.executable} ({e}); "
              "run scripts/setup to install requirements-test.txt into .venv",
              file=sys.stderr)
        return 3
    # Size guidance 0: keep every event rather than a reservoir sample.
    acc = event_accumulator.EventAccumulator(
        sys.argv[1], size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            print(f"{event.step}\t{tag}\t{event.value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
