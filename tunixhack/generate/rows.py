"""Which rows a run sends, decided without holding the rows: a plan of row indices, read lazily.

The split stays in Arrow on disk (memory-mapped by `datasets`); planning touches only what it must (the
recipe's `keep` filter reads rows, an id column is read as one column, ids by row index read nothing), so
memory does not grow with the dataset beyond a few bytes per selected row:
1. the rows the recipe keeps, in split order;
2. --shuffle: a seeded permutation of them (random.Random(seed).shuffle, the same order as before plans);
3. --limit: the first N;
4. --shard K/N: the rows whose id hashes (CRC-32) to K of N, so shards are disjoint and make up the whole;
5. rows already in the output are counted as done and left out.
Rows are then read in batches, in plan order, as the run dispatches them.
"""

from __future__ import annotations

import random
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .recipe import Recipe
from .settings import Selection
from .source import open_split

READ_BATCH = 256     # rows read from Arrow at once while dispatching
SCAN_BATCH = 4096    # rows read at once while planning (only when the recipe filters rows)


@dataclass
class Plan:
    data: object            # datasets.Dataset, memory-mapped
    recipe: Recipe
    split: str
    total: int              # rows selected (this shard's share)
    done: int               # of them, finished by an earlier run
    todo: np.ndarray        # indices into data still to send, in dispatch order

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, dict]]:
        """(id, row) of the rows still to send, read from disk a batch at a time."""
        todo = self.todo[start:stop]
        for at in range(0, len(todo), READ_BATCH):
            indices = todo[at: at + READ_BATCH].tolist()
            batch = self.data[indices]
            names = list(batch)
            for index, values in zip(indices, zip(*(batch[n] for n in names))):
                row = dict(zip(names, values))
                yield self.recipe.row_id(self.split, row, index), row


def make_plan(recipe: Recipe, selection: Selection, finished: set[str]) -> Plan:
    data = open_split(selection.source, selection.config, selection.split, recipe.columns,
                      recipe.splits if selection.source == recipe.dataset else ())
    order = kept(recipe, data)
    if selection.shuffle:
        order = list(order)
        random.Random(selection.seed).shuffle(order)
    if selection.limit:
        order = order[: selection.limit]
    keys = row_keys(recipe, data, selection.split, order)
    take, total, done = array("q"), 0, 0  # 8 bytes a row, not a Python int each
    k, n = selection.shard or (1, 1)
    for index, key in zip(order, keys):
        if n > 1 and zlib.crc32(key.encode()) % n != k - 1:
            continue
        total += 1
        if key in finished:
            done += 1
        else:
            take.append(index)
    return Plan(data, recipe, selection.split, total, done, np.frombuffer(take, dtype=np.int64))


def kept(recipe: Recipe, data) -> range | list[int]:
    """Indices of the rows the recipe keeps; all of them, without reading any, when it keeps every row."""
    if type(recipe).keep is Recipe.keep:
        return range(len(data))
    return [i for i, row in enumerate(scan(data)) if recipe.keep(row)]


def row_keys(recipe: Recipe, data, split: str, order) -> Iterator[str]:
    """The id of each row in `order` (recipe.row_id), reading no more of the rows than the id needs."""
    if type(recipe).row_id is not Recipe.row_id:  # a recipe's own ids may use any field: read the rows
        rows = scan(data)
        by_index = {}
        wanted = set(order)
        for i, row in enumerate(rows):
            if i in wanted:
                by_index[i] = recipe.row_id(split, row, i)
        keys = [by_index[i] for i in order]
    elif recipe.id_column:
        native = data.data.column(recipe.id_column).to_pylist()
        keys = [recipe.row_id(split, {recipe.id_column: native[i]}, i) for i in order]
    else:
        prefix = recipe.row_id(split, {}, 0)[:-1]  # "<recipe>/<split>/": ids are row indices
        return (prefix + str(i) for i in order)
    if len(set(keys)) != len(keys):
        raise UserError(f"row ids are not unique in the split: the recipe's id column {recipe.id_column!r} repeats")
    return iter(keys)


def scan(data) -> Iterator[dict]:
    for batch in data.iter(batch_size=SCAN_BATCH):
        names = list(batch)
        for values in zip(*(batch[n] for n in names)):
            yield dict(zip(names, values))
