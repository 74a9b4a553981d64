"""Long-range memory: the problems the LSTM was invented for, generated with a seed.

- ``adding``: add two marked values up to T steps apart (MSE against the 0.167 baseline);
- ``temporal-order``: classify the order of two symbols far apart among distractors;
- ``reber``: next-symbol prediction on the embedded Reber grammar;
- ``copy``: recall a short sequence after a long blank delay;
- ``ntm-copy``: copy up to 20 bit vectors and test up to 120, an LSTM with an external memory (a Neural Turing
  Machine) against a plain LSTM.

Each runs with ``--set model.cell=lstm|gru|rnn``; by default the GRU and RNN get the LSTM's
parameter budget (``model.equal_params``) and the LSTM's forget gate and the GRU's update gate start
near 1 (``model.forget_bias = 3``). ``lstmkit.diagnostics.gradient_flow`` shows why the LSTM
learns these and the plain RNN does not. Importing this package registers the tasks.
"""

from __future__ import annotations

from lstmkit.tasks.longrange import adding, copy_memory, ntm_copy, ntm_recall, reber, temporal_order
from lstmkit.tasks.longrange.common import GeneratedData, GeneratedTask, LongRangeModel, resolved_hidden_size

__all__ = [
    "GeneratedData",
    "GeneratedTask",
    "LongRangeModel",
    "adding",
    "copy_memory",
    "ntm_copy",
    "ntm_recall",
    "reber",
    "resolved_hidden_size",
    "temporal_order",
]
