"""Categorical features as the models take them: hashed into buckets, or as
raw int64 ids for dynamic tables."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

DEFAULT_BUCKETS = 1 << 14


def hash_column(values, buckets: int, salt: str) -> np.ndarray:
    """Stable hash of each value (any type, via its string) into
    `[0, buckets)`; CRC32 of `salt:value`, computed once per distinct
    value."""
    values = np.asarray(values).astype(str)
    distinct, inverse = np.unique(values, return_inverse=True)
    codes = np.array(
        [zlib.crc32(f"{salt}:{v}".encode()) % buckets for v in distinct],
        dtype=np.int64,
    )
    return codes[inverse.reshape(-1)].astype(np.int32)


# Integer values below this are their own id (times the field count);
# larger ones, and other values, are fingerprinted.
_LARGEST_RAW = 2**52


def _fingerprint(text: str) -> int:
    """A 63-bit BLAKE2b fingerprint of `text`, >= `_LARGEST_RAW`."""
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())
    return _LARGEST_RAW + digest % (2**63 - _LARGEST_RAW)


def raw_id_column(values, field: int, fields: int) -> np.ndarray:
    """Raw int64 ids of field `field` of `fields`, distinct across fields
    and values: an integer value `v` (or its decimal string, `|v| <
    2**52`) is `v * fields + field`; any other value a 63-bit BLAKE2b
    fingerprint of `field:value` (no buckets: two distinct values share an
    id with probability about `n**2 / 2**64`). Computed once per distinct
    value."""
    values = np.asarray(values)
    distinct, inverse = np.unique(values.astype(str), return_inverse=True)
    codes = []
    for v in distinct:
        try:
            number = int(v)
        except ValueError:
            number = None
        if number is not None and abs(number) < _LARGEST_RAW:
            codes.append(number * fields + field)
        else:
            codes.append(_fingerprint(f"{field}:{v}"))
    return np.asarray(codes, np.int64)[inverse.reshape(-1)]


def encode_features(columns: list, salts: list[str], buckets: int, raw_ids: bool):
    """`x[n, F]`: each column hashed into `buckets` (with its salt), or
    its raw ids."""
    if raw_ids:
        return np.stack(
            [raw_id_column(c, f, len(columns)) for f, c in enumerate(columns)], axis=1
        )
    return np.stack(
        [hash_column(c, buckets, salt) for c, salt in zip(columns, salts, strict=True)],
        axis=1,
    )


def feature_codes(domains: list[int], salts: list[str], buckets: int, raw_ids: bool):
    """Per field of values `0 .. domains[f] - 1`, the code
    `encode_features` gives each value: `codes[f][v]`, so integer columns
    are encoded by a lookup (`np.stack([codes[f][c] ...], axis=1)`)."""
    columns = [np.arange(n) for n in domains]
    if raw_ids:
        return [raw_id_column(c, f, len(columns)) for f, c in enumerate(columns)]
    pairs = zip(columns, salts, strict=True)
    return [hash_column(c, buckets, salt) for c, salt in pairs]
