"""GF(2^8) arithmetic and small matrix algebra, checked against galois and ISA-L."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storenode.coding import gf, kernel
from storenode.coding.errors import CodingError, CodingParamsError, SingularMatrixError

ELEMENTS = np.arange(256, dtype=np.uint8)
NONZERO = ELEMENTS[1:]

seeds = st.integers(0, 2**32 - 1)


def random_matrix(seed: int, rows: int, cols: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows, cols), dtype=np.uint8)


@pytest.fixture(scope="module")
def isal_lib() -> ctypes.CDLL:
    """The ISA-L library the kernel would load, for checking that we share its field."""
    for path, _origin in kernel._isal_candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.gf_gen_cauchy1_matrix  # noqa: B018 - probe the symbol
            lib.gf_mul  # noqa: B018
        except (OSError, AttributeError):
            continue
        return lib
    pytest.skip(
        "no ISA-L library loads here (neither Debian's libisal2 nor pyeclib's bundled copy), "
        "so agreement with ISA-L's field cannot be checked; the galois oracle tests still run"
    )


# --- the field ------------------------------------------------------------------------------


def test_oracle_field_uses_the_0x11d_polynomial(gf256: Any) -> None:
    assert int(gf256.irreducible_poly) == 0x11D == gf.POLY
    assert int(gf256.primitive_element) == 2


def test_multiplication_reduces_by_0x11d() -> None:
    # x^7 * x = x^8 = x^4 + x^3 + x^2 + 1 (0x1D) under 0x11D
    assert gf.mul(0x80, 2) == 0x1D
    assert gf.mul(0x80, 0x80) == gf.mul(0x1D, 0x40)


def test_multiplication_agrees_with_galois_for_every_pair(gf256: Any) -> None:
    a = gf256(ELEMENTS)
    expected = np.asarray(a[:, None] * a[None, :], dtype=np.uint8)
    np.testing.assert_array_equal(gf.MUL, expected)
    got = np.array([[gf.mul(x, y) for y in range(256)] for x in range(256)], dtype=np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_inverse_agrees_with_galois_for_every_nonzero_element(gf256: Any) -> None:
    expected = np.asarray(gf256(NONZERO) ** -1, dtype=np.uint8)
    got = np.array([gf.inv(int(x)) for x in NONZERO], dtype=np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_zero_has_no_inverse() -> None:
    with pytest.raises(ZeroDivisionError):
        gf.inv(0)


def test_field_axioms_hold_for_every_element() -> None:
    mul = gf.MUL
    a = ELEMENTS[:, None, None]
    b = ELEMENTS[None, :, None]
    c = ELEMENTS[None, None, :]
    # commutativity, identities and absorbing zero
    np.testing.assert_array_equal(mul, mul.T)
    np.testing.assert_array_equal(mul[1], ELEMENTS)
    assert not mul[0].any()
    # every non-zero element has exactly one inverse, the one inv() returns
    for x in NONZERO:
        assert np.flatnonzero(mul[x] == 1).tolist() == [gf.inv(int(x))]
    # associativity and distributivity over all 2^24 triples
    np.testing.assert_array_equal(mul[mul[a, b], c], mul[a, mul[b, c]])
    np.testing.assert_array_equal(mul[a, b ^ c], mul[a, b] ^ mul[a, c])


def test_two_generates_the_multiplicative_group() -> None:
    powers = {1}
    x = 1
    for _ in range(254):
        x = gf.mul(x, 2)
        powers.add(x)
    assert powers == set(range(1, 256))


def test_multiplication_agrees_with_isal(isal_lib: ctypes.CDLL) -> None:
    isal_lib.gf_mul.restype = ctypes.c_ubyte
    isal_lib.gf_mul.argtypes = [ctypes.c_ubyte, ctypes.c_ubyte]
    got = np.array(
        [[isal_lib.gf_mul(x, y) for y in range(256)] for x in range(256)], dtype=np.uint8
    )
    np.testing.assert_array_equal(got, gf.MUL)


# --- matrices -------------------------------------------------------------------------------


@given(rows=st.integers(1, 16), inner=st.integers(1, 16), cols=st.integers(1, 16), seed=seeds)
def test_matmul_agrees_with_galois(gf256: Any, rows: int, inner: int, cols: int, seed: int) -> None:
    a = random_matrix(seed, rows, inner)
    b = random_matrix(seed + 1, inner, cols)
    got = gf.matmul(a, b)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.asarray(gf256(a) @ gf256(b)))


@given(rows=st.integers(1, 32), cols=st.integers(1, 32), seed=seeds)
def test_vecmat_agrees_with_galois(gf256: Any, rows: int, cols: int, seed: int) -> None:
    v = random_matrix(seed, 1, rows)[0]
    m = random_matrix(seed + 1, rows, cols)
    got = gf.vecmat(v, m)
    assert got.shape == (cols,)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.asarray(gf256(v) @ gf256(m)))


def test_matrix_products_refuse_shapes_that_do_not_compose() -> None:
    with pytest.raises(ValueError):
        gf.matmul(np.zeros((2, 3), np.uint8), np.zeros((4, 2), np.uint8))
    with pytest.raises(ValueError):
        gf.vecmat(np.zeros(3, np.uint8), np.zeros((4, 2), np.uint8))


@given(n=st.integers(1, 32), seed=seeds)
def test_mat_inv_agrees_with_galois(gf256: Any, n: int, seed: int) -> None:
    m = random_matrix(seed, n, n)
    before = m.copy()
    if np.linalg.matrix_rank(gf256(m)) < n:
        with pytest.raises(SingularMatrixError):
            gf.mat_inv(m)
        return
    got = gf.mat_inv(m)
    np.testing.assert_array_equal(m, before)  # the input is left alone
    np.testing.assert_array_equal(got, np.asarray(np.linalg.inv(gf256(m))))
    np.testing.assert_array_equal(gf.matmul(m, got), np.eye(n, dtype=np.uint8))


@given(
    n=st.integers(2, 32),
    seed=seeds,
    how=st.sampled_from(["duplicate row", "scaled row", "sum of two rows", "zero row"]),
    data=st.data(),
)
def test_mat_inv_rejects_singular_matrices(
    gf256: Any, n: int, seed: int, how: str, data: st.DataObject
) -> None:
    m = random_matrix(seed, n, n)
    target = data.draw(st.integers(0, n - 1), label="target")
    i, j = data.draw(
        st.lists(st.integers(0, n - 1).filter(lambda r: r != target), min_size=2, max_size=2),
        label="sources",
    )
    c = data.draw(st.integers(1, 255), label="scale")
    if how == "duplicate row":
        m[target] = m[i]
    elif how == "scaled row":
        m[target] = gf.MUL[c, m[i]]
    elif how == "sum of two rows":
        m[target] = m[i] ^ gf.MUL[c, m[j]]
    else:
        m[target] = 0
    assert np.linalg.matrix_rank(gf256(m)) < n  # the oracle agrees it is singular
    with pytest.raises(SingularMatrixError):
        gf.mat_inv(m)


def test_singular_matrix_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        gf.mat_inv(np.ones((3, 3), np.uint8))
    assert issubclass(SingularMatrixError, CodingError)


def test_mat_inv_refuses_non_square_matrices() -> None:
    with pytest.raises(ValueError):
        gf.mat_inv(np.ones((2, 3), np.uint8))


# --- the Cauchy generator -------------------------------------------------------------------

code_params = st.integers(1, 255).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n)))


@given(params=code_params)
def test_cauchy_generator_is_systematic(params: tuple[int, int]) -> None:
    k, n = params
    g = gf.cauchy_generator(k, n)
    assert g.shape == (n, k)
    assert g.dtype == np.uint8
    np.testing.assert_array_equal(g[:k], np.eye(k, dtype=np.uint8))
    assert g[k:].all()  # a Cauchy row has no zero entry


@given(params=code_params, data=st.data())
def test_any_k_rows_of_the_cauchy_generator_are_invertible(
    gf256: Any, params: tuple[int, int], data: st.DataObject
) -> None:
    k, n = params
    g = gf.cauchy_generator(k, n)
    seed = data.draw(seeds, label="seed")
    rows = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    sub = g[rows]
    inverse = gf.mat_inv(sub)  # raises SingularMatrixError if the code were not MDS
    np.testing.assert_array_equal(
        np.asarray(gf256(sub) @ gf256(inverse)), np.eye(k, dtype=np.uint8)
    )


def test_the_parity_rows_alone_recover_the_data_for_every_small_code() -> None:
    # The hardest k-subsets are the ones with no identity row at all.
    for n in range(2, 33):
        for k in range(1, n // 2 + 1):
            g = gf.cauchy_generator(k, n)
            for start in range(k, n - k + 1):
                gf.mat_inv(g[start : start + k])


@pytest.mark.parametrize(("k", "n"), [(1, 1), (1, 3), (4, 12), (3, 10), (10, 14), (16, 255)])
def test_cauchy_generator_matches_isal(isal_lib: ctypes.CDLL, k: int, n: int) -> None:
    isal_lib.gf_gen_cauchy1_matrix.restype = None
    isal_lib.gf_gen_cauchy1_matrix.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    expected = np.zeros((n, k), dtype=np.uint8)
    isal_lib.gf_gen_cauchy1_matrix(expected.ctypes.data, n, k)
    np.testing.assert_array_equal(gf.cauchy_generator(k, n), expected)


@pytest.mark.parametrize(
    ("k", "n"), [(5, 4), (2, 1), (1, 256), (255, 256), (0, 4), (-1, 4), (0, 0), (300, 300)]
)
def test_cauchy_generator_refuses_impossible_codes(k: int, n: int) -> None:
    with pytest.raises(CodingParamsError):
        gf.cauchy_generator(k, n)


def test_cauchy_generator_accepts_the_largest_code() -> None:
    g = gf.cauchy_generator(255, 255)
    np.testing.assert_array_equal(g, np.eye(255, dtype=np.uint8))


def test_a_caller_cannot_corrupt_the_cached_generator() -> None:
    g = gf.cauchy_generator(4, 12)
    with pytest.raises(ValueError):
        g[5, 0] ^= 1
    assert gf.cauchy_generator(4, 12)[5, 0] == gf.inv(5 ^ 0)
