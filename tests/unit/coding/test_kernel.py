"""``out = M x blocks`` over GF(2^8): ISA-L and numpy backends against the galois oracle."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.coding import kernel
from storenode.coding.errors import (
    BlockTypeError,
    CodingError,
    GfBackendUnavailableError,
    ShardSizeError,
)
from storenode.coding.gf import cauchy_generator
from storenode.coding.kernel import IsalBackend, NumpyBackend, gf_matmul

# Lengths around the SIMD widths ISA-L works in (16/32/64 bytes) and its small-input paths.
AWKWARD_LENGTHS = [0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 1000, 4095, 5000]
lengths = st.one_of(st.sampled_from(AWKWARD_LENGTHS), st.integers(0, 5000))
seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module")
def isal() -> IsalBackend:
    backend = kernel.load_isal()
    if backend is None:
        pytest.skip(
            "ISA-L does not load here (no Debian libisal2 and no copy in the pyeclib wheel); "
            "install one to test the isal backend - the numpy backend is still tested"
        )
    return backend


@pytest.fixture(scope="module")
def numpy_backend() -> NumpyBackend:
    return NumpyBackend()


def make_matrix(seed: int, rows: int, cols: int, style: str) -> np.ndarray:
    """A coefficient matrix; 'sparse' mixes in the 0 and 1 entries backends special-case."""
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 256, (rows, cols), dtype=np.uint8)
    if style == "sparse":
        m[rng.random((rows, cols)) < 0.3] = 0
        m[rng.random((rows, cols)) < 0.3] = 1
    elif style == "zero":
        m[:] = 0
    elif style == "identity-ish":
        m[:] = 0
        np.fill_diagonal(m, 1)
    return m


def make_blocks(seed: int, count: int, length: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, length), dtype=np.uint8)


def oracle(gf256: Any, matrix: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    if blocks.shape[1] == 0:
        return np.zeros((matrix.shape[0], 0), dtype=np.uint8)
    return np.asarray(gf256(matrix) @ gf256(blocks), dtype=np.uint8)


@given(
    rows=st.integers(1, 20),
    cols=st.integers(1, 20),
    length=lengths,
    style=st.sampled_from(["dense", "sparse", "zero", "identity-ish"]),
    seed=seeds,
)
def test_isal_and_numpy_backends_give_identical_bytes_equal_to_the_oracle(
    gf256: Any,
    isal: IsalBackend,
    numpy_backend: NumpyBackend,
    rows: int,
    cols: int,
    length: int,
    style: str,
    seed: int,
) -> None:
    matrix = make_matrix(seed, rows, cols, style)
    blocks = make_blocks(seed + 1, cols, length)
    expected = oracle(gf256, matrix, blocks)
    from_isal = gf_matmul(matrix, blocks, using=isal)
    from_numpy = gf_matmul(matrix, blocks, using=numpy_backend)
    for got in (from_isal, from_numpy):
        assert got.shape == (rows, length)
        assert got.dtype == np.uint8
    assert from_isal.tobytes() == from_numpy.tobytes()
    np.testing.assert_array_equal(from_isal, expected)


@given(k=st.integers(1, 16), extra=st.integers(0, 16), length=lengths, seed=seeds)
def test_encoding_with_the_cauchy_generator_keeps_the_data_blocks(
    isal: IsalBackend, numpy_backend: NumpyBackend, k: int, extra: int, length: int, seed: int
) -> None:
    g = cauchy_generator(k, k + extra)
    data = make_blocks(seed, k, length)
    for backend in (isal, numpy_backend):
        shards = gf_matmul(g, data, using=backend)
        np.testing.assert_array_equal(shards[:k], data)


def as_bytes(blocks: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in blocks]


def as_bytearrays(blocks: np.ndarray) -> list[bytearray]:
    return [bytearray(row.tobytes()) for row in blocks]


def as_memoryviews(blocks: np.ndarray) -> list[memoryview]:
    return [memoryview(row.tobytes()) for row in blocks]


def as_memoryview_slices(blocks: np.ndarray) -> list[memoryview]:
    # slices of one shared buffer, as a stripe cut into blocks would be
    whole = memoryview(b"\xaa" + blocks.tobytes())
    size = blocks.shape[1]
    return [whole[1 + i * size : 1 + (i + 1) * size] for i in range(blocks.shape[0])]


def as_row_arrays(blocks: np.ndarray) -> list[np.ndarray]:
    return [row.copy() for row in blocks]


def as_strided_array(blocks: np.ndarray) -> np.ndarray:
    wide = np.zeros((blocks.shape[0], 2 * blocks.shape[1]), dtype=np.uint8)
    wide[:, ::2] = blocks
    return wide[:, ::2]  # a non-contiguous view


def as_fortran_array(blocks: np.ndarray) -> np.ndarray:
    return np.asfortranarray(blocks)


INPUT_FORMS = [
    as_bytes,
    as_bytearrays,
    as_memoryviews,
    as_memoryview_slices,
    as_row_arrays,
    np.copy,
    as_strided_array,
    as_fortran_array,
]


@pytest.mark.parametrize("form", INPUT_FORMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("backend_name", ["isal", "numpy"])
@pytest.mark.parametrize("length", [0, 1, 33, 1000])
def test_every_buffer_form_gives_the_same_result(
    gf256: Any, request: pytest.FixtureRequest, form: Any, backend_name: str, length: int
) -> None:
    backend = request.getfixturevalue("isal" if backend_name == "isal" else "numpy_backend")
    matrix = make_matrix(7, 5, 3, "dense")
    blocks = make_blocks(8, 3, length)
    got = gf_matmul(matrix, form(blocks), using=backend)
    np.testing.assert_array_equal(got, oracle(gf256, matrix, blocks))


@pytest.mark.parametrize("backend_name", ["isal", "numpy"])
def test_inputs_are_not_modified(request: pytest.FixtureRequest, backend_name: str) -> None:
    backend = request.getfixturevalue("isal" if backend_name == "isal" else "numpy_backend")
    matrix = make_matrix(1, 4, 3, "dense")
    blocks = make_blocks(2, 3, 100)
    matrix_before, blocks_before = matrix.copy(), blocks.copy()
    gf_matmul(matrix, blocks, using=backend)
    gf_matmul(matrix, list(blocks), using=backend)
    np.testing.assert_array_equal(matrix, matrix_before)
    np.testing.assert_array_equal(blocks, blocks_before)


@pytest.mark.parametrize("backend_name", ["isal", "numpy"])
def test_blocks_of_unequal_length_are_refused(
    request: pytest.FixtureRequest, backend_name: str
) -> None:
    backend = request.getfixturevalue("isal" if backend_name == "isal" else "numpy_backend")
    matrix = make_matrix(1, 2, 3, "dense")
    blocks: Any
    for blocks in (
        [b"a" * 10, b"b" * 10, b"c" * 11],
        [b"a" * 10, b"", b"c" * 10],
        [bytearray(5), memoryview(b"x" * 4), np.zeros(5, np.uint8)],
    ):
        with pytest.raises(ShardSizeError):
            gf_matmul(matrix, blocks, using=backend)


@pytest.mark.parametrize("backend_name", ["isal", "numpy"])
@pytest.mark.parametrize(("cols", "count"), [(3, 2), (2, 3), (1, 0), (4, 1)])
def test_a_matrix_that_does_not_match_the_block_count_is_refused(
    request: pytest.FixtureRequest, backend_name: str, cols: int, count: int
) -> None:
    backend = request.getfixturevalue("isal" if backend_name == "isal" else "numpy_backend")
    matrix = make_matrix(1, 2, cols, "dense")
    with pytest.raises(ShardSizeError):
        gf_matmul(matrix, make_blocks(2, count, 64), using=backend)
    with pytest.raises(ShardSizeError):
        gf_matmul(matrix, as_bytes(make_blocks(2, count, 64)), using=backend)


def test_a_one_dimensional_matrix_is_refused() -> None:
    with pytest.raises(ShardSizeError):
        gf_matmul(np.ones(3, np.uint8), [b"abc"] * 3, using=NumpyBackend())


def test_shard_size_error_is_a_coding_value_error() -> None:
    assert issubclass(ShardSizeError, CodingError)
    assert issubclass(ShardSizeError, ValueError)


# --- blocks and matrices that are not uint8 --------------------------------------------------


class MustNotRun:
    """A backend that fails if a refused input ever reaches it."""

    name = "must-not-run"

    def matmul(self, matrix: np.ndarray, rows: Any) -> np.ndarray:
        raise AssertionError("a refused input reached the backend")


def backends(request: pytest.FixtureRequest, backend_name: str) -> Any:
    if backend_name == "must-not-run":
        return MustNotRun()
    return request.getfixturevalue("isal" if backend_name == "isal" else "numpy_backend")


ALL_BACKENDS = ["isal", "numpy", "must-not-run"]
NON_UINT8 = [np.uint16, np.int64, np.int8, np.float32, np.bool_]


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", NON_UINT8, ids=lambda d: np.dtype(d).name)
def test_a_two_dimensional_array_of_blocks_that_is_not_uint8_is_refused(
    request: pytest.FixtureRequest, backend_name: str, dtype: Any
) -> None:
    backend = backends(request, backend_name)
    matrix = make_matrix(1, 2, 3, "dense")
    # values above 255 would once have been truncated, int8 reinterpreted
    blocks = (make_blocks(2, 3, 40).astype(np.int64) * 300 - 1000).astype(dtype)
    with pytest.raises(BlockTypeError, match=np.dtype(dtype).name):
        gf_matmul(matrix, blocks, using=backend)
    with pytest.raises(BlockTypeError):
        kernel.as_rows(blocks)


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", NON_UINT8, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_list_with_a_one_dimensional_array_that_is_not_uint8_is_refused(
    request: pytest.FixtureRequest, backend_name: str, dtype: Any, position: int
) -> None:
    backend = backends(request, backend_name)
    matrix = make_matrix(1, 2, 3, "dense")
    blocks: list[Any] = [b"a" * 40, np.zeros(40, np.uint8), bytearray(40)]
    # 40 bytes as uint8 would be 20 uint16s, 5 int64s, ...: the same byte length
    # whatever the dtype, so only the type check can catch it
    blocks[position] = np.zeros(40 // np.dtype(dtype).itemsize, dtype=dtype)
    with pytest.raises(BlockTypeError, match=np.dtype(dtype).name):
        gf_matmul(matrix, blocks, using=backend)
    with pytest.raises(BlockTypeError):
        kernel.as_rows(blocks)


@pytest.mark.parametrize("dtype", NON_UINT8, ids=lambda d: np.dtype(d).name)
def test_a_buffer_that_is_not_uint8_is_not_viewed_as_bytes(dtype: Any) -> None:
    for shape in ((8,), (2, 4)):
        with pytest.raises(BlockTypeError):
            kernel.view(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
@pytest.mark.parametrize(
    "matrix",
    [
        make_matrix(1, 2, 3, "dense").astype(np.int64),  # valid coefficients, wrong type
        make_matrix(1, 2, 3, "dense").astype(np.float64),
        make_matrix(1, 2, 3, "dense").astype(np.uint16) + 256,  # would truncate to the same
        make_matrix(1, 2, 3, "dense").astype(np.int8),
        make_matrix(1, 2, 3, "dense").tolist(),  # not an array at all
        np.ones((2, 3), dtype=np.float32),
    ],
    ids=["int64", "float64", "uint16", "int8", "list", "float32"],
)
def test_a_coefficient_matrix_that_is_not_a_uint8_array_is_refused(
    request: pytest.FixtureRequest, backend_name: str, matrix: Any
) -> None:
    backend = backends(request, backend_name)
    blocks_forms: list[Any] = [make_blocks(2, 3, 40), as_bytes(make_blocks(2, 3, 40))]
    for blocks in blocks_forms:
        with pytest.raises(BlockTypeError, match="uint8"):
            gf_matmul(matrix, blocks, using=backend)


def test_uint8_inputs_still_reach_the_backend() -> None:
    # the guard of the tests above: MustNotRun is reached by acceptable inputs
    with pytest.raises(AssertionError, match="reached the backend"):
        gf_matmul(make_matrix(1, 2, 3, "dense"), make_blocks(2, 3, 40), using=MustNotRun())


def test_block_type_error_is_a_coding_type_error() -> None:
    assert issubclass(BlockTypeError, CodingError)
    assert issubclass(BlockTypeError, TypeError)
    assert not issubclass(BlockTypeError, ValueError)


# --- choosing the backend -------------------------------------------------------------------


def test_numpy_backend_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel.ENV_VAR, "numpy")
    assert isinstance(kernel._choose(), NumpyBackend)
    monkeypatch.setenv(kernel.ENV_VAR, " NumPy ")
    assert isinstance(kernel._choose(), NumpyBackend)


def test_isal_backend_can_be_forced(monkeypatch: pytest.MonkeyPatch, isal: IsalBackend) -> None:
    monkeypatch.setenv(kernel.ENV_VAR, "isal")
    chosen = kernel._choose()
    assert isinstance(chosen, IsalBackend)
    assert chosen.name.startswith("isal (")


def test_isal_is_preferred_when_nothing_is_forced(
    monkeypatch: pytest.MonkeyPatch, isal: IsalBackend
) -> None:
    monkeypatch.delenv(kernel.ENV_VAR, raising=False)
    assert isinstance(kernel._choose(), IsalBackend)
    monkeypatch.setenv(kernel.ENV_VAR, "")
    assert isinstance(kernel._choose(), IsalBackend)


def _gfni_candidates() -> list[tuple[str, str]]:
    import ctypes

    found = []
    for path, origin in kernel._isal_candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if kernel._has_symbol(lib, "ec_encode_data_avx512_gfni"):
            found.append((path, origin))
    return found


def test_an_isal_build_with_gfni_kernels_is_preferred_over_an_older_one_listed_first(
    monkeypatch: pytest.MonkeyPatch, isal: IsalBackend
) -> None:
    newer = _gfni_candidates()
    older = [c for c in kernel._isal_candidates() if c not in newer]
    if not newer:
        pytest.skip("no ISA-L >= 2.31 (with GFNI kernels) on this machine to prefer")
    monkeypatch.setattr(kernel, "_isal_candidates", lambda: older + newer)
    chosen = kernel.load_isal()
    assert chosen is not None
    assert chosen.name == f"isal ({newer[0][1]}, GFNI kernels)"


def test_among_equal_isal_builds_the_first_listed_is_used(
    monkeypatch: pytest.MonkeyPatch, isal: IsalBackend
) -> None:
    only = kernel._isal_candidates()[-1:]
    monkeypatch.setattr(kernel, "_isal_candidates", lambda: only + only)
    chosen = kernel.load_isal()
    assert chosen is not None
    assert chosen.name.startswith(f"isal ({only[0][1]}")


def test_an_unknown_backend_name_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel.ENV_VAR, "bogus")
    with pytest.raises(GfBackendUnavailableError, match="bogus"):
        kernel._choose()


def test_without_isal_the_numpy_backend_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kernel.ENV_VAR, raising=False)
    monkeypatch.setattr(kernel, "load_isal", lambda: None)
    assert isinstance(kernel._choose(), NumpyBackend)


def test_forcing_isal_without_isal_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel.ENV_VAR, "isal")
    monkeypatch.setattr(kernel, "load_isal", lambda: None)
    with pytest.raises(GfBackendUnavailableError, match="libisal2"):
        kernel._choose()


def test_the_backend_is_chosen_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # monkeypatch restores the process-wide cached backend afterwards
    monkeypatch.setattr(kernel, "_backend", None)
    monkeypatch.setenv(kernel.ENV_VAR, "numpy")
    caplog.set_level(logging.INFO, logger=kernel.__name__)

    first = kernel.backend()
    gf_matmul(np.ones((1, 1), np.uint8), [b"abc"])
    assert kernel.backend() is first
    assert kernel.backend_name() == "numpy"

    lines = [r for r in caplog.records if r.name == kernel.__name__]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "numpy" in lines[0].getMessage()


def test_gf_matmul_uses_the_process_backend_by_default(
    monkeypatch: pytest.MonkeyPatch, gf256: Any
) -> None:
    monkeypatch.setattr(kernel, "_backend", None)
    monkeypatch.setenv(kernel.ENV_VAR, "numpy")
    matrix = make_matrix(3, 2, 2, "dense")
    blocks = make_blocks(4, 2, 50)
    np.testing.assert_array_equal(gf_matmul(matrix, blocks), oracle(gf256, matrix, blocks))
    assert isinstance(kernel._backend, NumpyBackend)
