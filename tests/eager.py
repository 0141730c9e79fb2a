"""Keras training in the tests without tracing graphs.

A fit traces its train and predict steps into TensorFlow graphs first; for the tiny models and a few steps the
tests train, that tracing is most of the work (a fit here: 6.8 CPU-s traced, 2.6 eager). Eager execution runs the
same layers, the same arithmetic, step by step. The product trains traced; these tests check what training
produces (shapes, files, reports, the boosting update), not how fast TensorFlow's graphs run.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def eager_training() -> Iterator[None]:
    """Within the block, tf.function (Keras's train/predict steps) runs eagerly; the switch is put back after.
    tf.data's input functions stay traced, as TensorFlow warns (once); that note is dropped here."""
    import tensorflow as tf

    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Even though the `tf.config.experimental_run_functions_eagerly`")
            yield
    finally:
        tf.config.run_functions_eagerly(before)
