"""The chunk store's bytes on disk (format 3; docs/specs/chunk-store.md): the
index keys and records in LevelDB and where a chunk's file lives. Integers are
big endian::

    cs/meta/version   u32 format version (3)
    cs/meta/used      u64 sum of the sizes of the chunks held
    cs/meta/count     u64 number of chunks held
    cs/len/<id>       u64 size of chunk <id> and u32 CRC-32 of its bytes (the
                      CRC may be absent: a chunk stored by format 2); the
                      record's presence means the chunk is held

and a ``chunks/`` directory beside LevelDB's files, one file per chunk at
``chunks/<first two hex digits>/<id in hex>``.
"""

from __future__ import annotations

import struct
from typing import Final

FORMAT_VERSION = 3
V2_FORMAT_VERSION = 2
"""Format 2 recorded a chunk's size alone; a format-3 store still reads such
records (it checks those chunks by their Merkle root and adds the CRC), so
opening a format-2 store only writes the new version."""
V1_FORMAT_VERSION = 1
V1_DATA_PREFIX = b"cs/data/"
"""Format 1 kept each chunk's bytes in LevelDB under this prefix; opening such a
store upgrades it to format 3."""
VERSION_KEY = b"cs/meta/version"
USED_KEY = b"cs/meta/used"
COUNT_KEY = b"cs/meta/count"
LEN_PREFIX = b"cs/len/"
LEN_END = b"cs/len0"  # the first key after every cs/len/ key ("0" follows "/")
CHUNKS_DIR = "chunks"
PART_SUFFIX = ".part"
ID_HEX_LEN: Final = 2 * 32
FANOUT: Final = tuple(f"{i:02x}" for i in range(256))

U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
RECORD = struct.Struct(">QI")  # a chunk's size and the CRC-32 of its bytes
RECORD_SIZES: Final = (U64.size, RECORD.size)
"""The lengths a ``cs/len/<id>`` record may have: format 2's, and format 3's."""
