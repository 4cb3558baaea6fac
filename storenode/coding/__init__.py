"""The coding core: GF(2^8) kernels, Reed–Solomon, RLNC and Merkle trees.

Pure and synchronous: nothing here imports trio or reads a clock.
"""
