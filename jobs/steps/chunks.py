"""The loop of a chunk node (``process``, ``score``) over its chunks of the plan, and the names
of the nodes whose outputs a merge collects."""

from __future__ import annotations

from pathlib import Path

from ..plan import PlanError, chunk_events, write_partial
from .common import chunk_node_name


def run_node_chunks(processor_instance, plan, slot: int, slots: int, partials: Path, **write_options) -> int:
    """Run ``processor_instance`` on this node's chunks, one partial output per chunk."""
    chunks = plan.for_slot(slot, slots)
    for chunk in chunks:
        with chunk_events(plan, chunk) as events:
            output = processor_instance.process(events)
        write_partial(partials, chunk, single_result(output, chunk), **write_options)
    return len(chunks)


def single_result(output: dict, chunk) -> dict:
    """The processor's output of ``chunk`` (its one key), refused if it returned other chunks."""
    if list(output) != [chunk.key]:
        raise PlanError(f"the processor returned chunk(s) {sorted(output)} for chunk {chunk.describe()}")
    return output[chunk.key]


def slot_namer(plan, step: str, slots: int | None):
    """A function naming the ``step`` node that ran a chunk (for a merge's messages); None
    without ``slots``."""
    if not slots:
        return None
    index = {chunk.key: i for i, chunk in enumerate(plan.chunks)}
    return lambda chunk: chunk_node_name(step, index[chunk.key] % slots)
