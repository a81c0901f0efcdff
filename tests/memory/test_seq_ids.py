"""SeqIds: record ids by seq, as the dense mirror and the keyword index turn labels into ids."""

from __future__ import annotations

import numpy as np

from agentforge.memory.seq_ids import SeqIds


def test_ids_by_seq_grow_and_are_forgotten() -> None:
    ids = SeqIds(size=2)
    ids[0], ids[1], ids[5000] = "a", "b", "c"  # 5000: grows past twice the size
    ids.assign([7, 9000], ["d", "e"])
    ids.assign([], [])
    assert ids.names(np.array([0, 5000, 3, 7, 9000, 10**6, -1])) == [
        "a",
        "c",
        None,
        "d",
        "e",
        None,
        None,
    ]
    ids.pop(1)
    ids.pop(10**6)  # never set: nothing to forget
    assert ids.names(np.array([1, 0])) == [None, "a"]


def test_names_keep_the_shape_and_give_none_for_unknown_seqs() -> None:
    ids = SeqIds()
    for seq in range(10):
        ids[seq] = f"r{seq}"
    labels = np.array([[3, 1], [9, 0]], dtype=np.uint64)  # hnswlib's label type
    assert ids.names(labels) == [["r3", "r1"], ["r9", "r0"]]
    ids.pop(9)
    assert ids.names(np.array([9, 2, 5000, -1])) == [None, "r2", None, None]
    assert ids.names(np.array([], dtype=np.int64)) == []
