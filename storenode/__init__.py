"""storenode: a decentralized storage network for music and other media."""

__version__ = "0.1.0"
