"""A dynamic table as stock TensorFlow ops, for serving."""

import keras
import numpy as np

from tf_swap.serving_rows import ServingRows


class ServingTable(ServingRows, keras.layers.Layer):
    """The rows of a dynamic table frozen into stock ops (`ServingRows`).

    Args:
        ids: The stored ids, int64 `[entries]`.
        rows: Their rows, float32 `[entries, dim]`.
    """

    def __init__(self, ids: np.ndarray, rows: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self._freeze(ids, rows)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)
